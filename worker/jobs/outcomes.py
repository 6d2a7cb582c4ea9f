"""What the worker does with one message: attach, or schedule a retry, or fail it.

Every outcome is decided here and nowhere else: success (acknowledged), a retry
scheduled with the delay from ``worker.jobs.retry_policy`` (the same job id,
attempt count carried in the message options), or a failed job recorded with
its reason: a ``PermanentFailure`` from an integration (a Zendesk 422, say)
becomes a failed job here. Invalid messages are failed, never raised: a bad
message must not stop the worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Shutdown, TimeLimitExceeded
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from integrations.errors import IntegrationError, PermanentFailure, RetryLater
from worker import keys
from worker.attach import requester
from worker.attach.events import BugReport, InvalidEvent, parse_event, require_distinct_id
from worker.attach.use_case import attach_replay
from worker.config import Config
from worker.errors import AttachLater, AttachRefused, StoreUnavailable
from worker.jobs import retry_policy
from worker.jobs.failed import FailedJob, FailedJobs, session_of
from worker.jobs.redis_connection import UNREACHABLE, store_calls
from worker.jobs.scheduler import schedule_retry
from worker.jobs.thread_services import ThreadServices
from worker.logs import job_fields
from worker.metrics import JOBS, system_of

log = logging.getLogger(__name__)

#: The longest last error kept on a message waiting for its retry.
MAX_LAST_ERROR_CHARS = 500


def _patiently(what: str, operation: Callable[[], object]) -> None:
    """Run a Redis write that records a job's outcome, riding out a Redis restart.

    Without this, a retry that cannot be enqueued at that instant would be
    dropped (dramatiq's Retries middleware logs the error and acks the message).
    """
    retrying = Retrying(
        retry=retry_if_exception_type(UNREACHABLE),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(retry_policy.REDIS_PATIENCE_SECONDS),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "Redis unavailable while trying to %s; retrying: %s",
            what,
            state.outcome.exception() if state.outcome else "?",
        ),
    )
    retrying(operation)


def _event_argument(message: dramatiq.Message[Any]) -> Any:
    if len(message.args) != 1 or message.kwargs:
        raise InvalidEvent("the message must carry exactly one event object as its argument")
    return message.args[0]


class JobRunner:
    """Runs the attach use case for each message and records its outcome."""

    def __init__(
        self, config: Config, broker: RedisBroker, failed: FailedJobs, services: ThreadServices
    ) -> None:
        self._config = config
        self._broker = broker
        self._failed = failed
        self._services = services

    def run_current_message(self, *args: object, **kwargs: object) -> None:
        """The actor's function: runs the message being processed (its arguments are in it)."""
        message = CurrentMessage.get_current_message()
        if message is None:  # pragma: no cover - CurrentMessage is always installed
            raise RuntimeError("CurrentMessage middleware is missing")
        self.run(message)

    def run(self, message: dramatiq.Message[Any]) -> None:
        options = message.options
        attempt = int(options.get(keys.OPTION_ATTEMPTS, 0)) + 1
        first_at = float(options.get(keys.OPTION_FIRST_ATTEMPT_AT) or time.time())
        raw: Any = message.args[0] if message.args else None
        # Every line logged during the job carries its ids (JSON logs: as keys).
        with job_fields(
            job_id=message.message_id,
            attempt=attempt,
            delivery_id=options.get(keys.OPTION_DELIVERY_ID),
            session_id=session_of(raw),
        ) as fields:
            try:
                event = parse_event(_event_argument(message))
                if self._config.posthog.require_distinct_id:
                    require_distinct_id(event)
            except InvalidEvent as exc:
                self._fail(message, raw, None, f"invalid event: {exc}", attempt, first_at)
                JOBS.labels("unknown", "failed").inc()
                return
            fields["target"] = event.target
            outcome = self._attach(message, event, raw, attempt, first_at)
            JOBS.labels(system_of(event.target), outcome).inc()

    def _attach(
        self,
        message: dramatiq.Message[Any],
        event: BugReport,
        raw: Any,
        attempt: int,
        first_at: float,
    ) -> str:
        """Attach; the job's outcome: attached, already_attached, no_recording, retry, failed,
        or the requester rule's requester_mismatch / requester_unknown."""
        services = self._services.get()
        door = message.options.get(keys.OPTION_DOOR)
        check = requester.check_for(self._config.privacy.match_requester, door)
        try:
            with store_calls(self._config):
                result = attach_replay(event, services, first_at, check)
        except RetryLater as exc:
            return self._retry_or_fail(
                message, event, exc.reason, exc.retry_after, attempt, first_at, exc.retry_by
            )
        except AttachLater as exc:
            return self._retry_or_fail(
                message, event, exc.reason, exc.retry_after, attempt, first_at
            )
        except PermanentFailure as exc:
            self._fail(message, raw, event, exc.reason, attempt, first_at, failure=exc)
            return "failed"
        except AttachRefused as exc:
            self._fail(message, raw, event, exc.reason, attempt, first_at)
            return "failed"
        except StoreUnavailable as exc:
            # Our own state store, not a vendor: an outage is transient, not a bug.
            log.warning("job %s: Redis unavailable: %s", message.message_id, exc)
            return self._retry_or_fail(
                message, event, "Redis was unavailable", None, attempt, first_at
            )
        except TimeLimitExceeded:
            limit = self._config.worker.job_time_limit_seconds
            reason = f"the job ran longer than worker.job_time_limit_seconds ({limit:g} s)"
            log.warning("job %s: %s", message.message_id, reason)
            return self._retry_or_fail(message, event, reason, None, attempt, first_at)
        except Shutdown:
            # The worker is stopping with this job in flight: it goes back on the queue.
            reason = "the worker stopped during the job"
            return self._retry_or_fail(message, event, reason, None, attempt, first_at)
        except Exception as exc:  # a bug or an unforeseen answer: retry a few times
            log.exception("job %s: unexpected error", message.message_id)
            reason = f"unexpected error: {type(exc).__name__}"
            if attempt >= retry_policy.MAX_ATTEMPTS_ON_UNEXPECTED_ERROR:
                self._fail(message, raw, event, reason, attempt, first_at)
                return "failed"
            return self._retry_or_fail(message, event, reason, None, attempt, first_at)
        if result.refused is not None:
            # Its own outcome, not a failure: retrying cannot change whose ticket it is.
            log.warning(
                "job %s: refused by the requester rule: %s",
                message.message_id,
                result.refused.reason,
                extra={"outcome": result.refused.outcome},
            )
            return result.refused.outcome
        if result.no_recording:
            log.info(
                "job %s: PostHog has no recording of %s; %s",
                message.message_id,
                event.session_id,
                f"told {event.target_label}" if result.written else "already said so",
                extra={"outcome": "no_recording"},
            )
            return "no_recording"
        if result.already_attached:
            log.info(
                "job %s: %s already on %s",
                message.message_id,
                event.session_id,
                event.target_label,
                extra={"outcome": "already_attached"},
            )
            return "already_attached"
        log.info(
            "job %s: attached %s to %s (%s)%s",
            message.message_id,
            event.session_id,
            event.target_label,
            ", ".join(result.written) or "nothing new",
            # Said with every such job, so that it is seen wherever one looks.
            "; PostHog's public sharing is switched off, so the link is the session's private "
            "page in PostHog"
            if result.private
            else "",
            extra={"outcome": "attached"},
        )
        return "attached"

    def _retry_or_fail(
        self,
        message: dramatiq.Message[Any],
        event: BugReport,
        reason: str,
        retry_after: float | None,
        attempt: int,
        first_at: float,
        retry_by: float | None = None,
    ) -> str:
        """Schedule the job's next attempt, or fail it when it is given up; which it was."""
        policy = self._config.retry
        delay = retry_policy.retry_delay_seconds(attempt, retry_after, policy)
        if retry_by is not None:
            delay = retry_policy.no_later_than(delay, retry_by - time.time(), policy)
        give_up = retry_policy.why_give_up(attempt, first_at, time.time() + delay, policy)
        if give_up is not None:
            self._fail(message, message.args[0], event, f"{give_up}: {reason}", attempt, first_at)
            return "failed"
        log.info(
            "job %s: attempt %d failed (%s); retrying in %.1f s",
            message.message_id,
            attempt,
            reason,
            delay,
            extra={"outcome": "retry"},
        )
        retry = message.copy(
            options={
                keys.OPTION_ATTEMPTS: attempt,
                keys.OPTION_FIRST_ATTEMPT_AT: first_at,
                # So that `status` shows why a job is waiting, not only that it is.
                keys.OPTION_LAST_ERROR: reason[:MAX_LAST_ERROR_CHARS],
            }
        )
        _patiently("schedule a retry", lambda: schedule_retry(self._broker, retry, delay))
        return "retry"

    def _fail(
        self,
        message: dramatiq.Message[Any],
        raw: Any,
        event: BugReport | None,
        reason: str,
        attempt: int,
        first_at: float,
        failure: IntegrationError | None = None,
    ) -> None:
        log.warning("job %s failed: %s", message.message_id, reason, extra={"outcome": "failed"})
        now = time.time()
        job = FailedJob(
            job_id=message.message_id,
            event=raw,
            session_id=event.session_id if event else session_of(raw),
            target=event.target if event else None,
            reason=reason,
            attempts=attempt,
            first_failure_at=first_at,
            last_failure_at=now,
            door=message.options.get(keys.OPTION_DOOR),
        )
        _patiently("record a failed job", lambda: self._failed.record(job))
        if event is not None and event.zendesk_ticket is not None:
            self._tag_failed_ticket(event, failure)

    def _tag_failed_ticket(self, event: BugReport, failure: IntegrationError | None) -> None:
        """Let agents see the failure in Zendesk, where the ticket can still be updated."""
        tag = self._config.zendesk.failed_tag
        services = self._services.get()
        if not tag or services.zendesk is None or event.zendesk_ticket is None:
            return
        if failure is not None and failure.system == "Zendesk":
            return  # the ticket itself is the problem (missing, closed, no access)
        try:
            services.zendesk.add_tags(event.zendesk_ticket, [tag])
        except IntegrationError as exc:
            log.warning("could not tag %s as failed: %s", event.target_label, exc.reason)
