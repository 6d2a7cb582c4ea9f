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

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Shutdown, TimeLimitExceeded
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
from worker.attach.helpdesks import helpdesk_of
from worker.attach.use_case import attach_replay
from worker.config import Config
from worker.errors import AttachLater, AttachRefused, StoreUnavailable
from worker.jobs import retry_policy
from worker.jobs.failed import FailedJob, FailedJobs, session_of
from worker.jobs.messages import Job
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


def _event_argument(job: Job) -> Any:
    if len(job.args) != 1 or job.kwargs:
        raise InvalidEvent("the message must carry exactly one event object as its argument")
    return job.args[0]


class JobRunner:
    """Runs the attach use case for each job and records its outcome."""

    def __init__(
        self, config: Config, broker: RedisBroker, failed: FailedJobs, services: ThreadServices
    ) -> None:
        self._config = config
        self._broker = broker
        self._failed = failed
        self._services = services

    def run(self, job: Job) -> None:
        attempt = job.attempts + 1
        first_at = job.first_attempt_at or time.time()
        raw: Any = job.args[0] if job.args else None
        # Every line logged during the job carries its ids (JSON logs: as keys).
        with job_fields(
            job_id=job.job_id,
            attempt=attempt,
            delivery_id=job.delivery_id,
            session_id=session_of(raw),
        ) as fields:
            try:
                event = parse_event(_event_argument(job))
                if self._config.posthog.require_distinct_id:
                    require_distinct_id(event)
            except InvalidEvent as exc:
                self._fail(job, raw, None, f"invalid event: {exc}", attempt, first_at)
                JOBS.labels("unknown", "failed").inc()
                return
            fields["target"] = event.target
            outcome = self._attach(job, event, raw, attempt, first_at)
            JOBS.labels(system_of(event.target), outcome).inc()

    def _attach(
        self,
        job: Job,
        event: BugReport,
        raw: Any,
        attempt: int,
        first_at: float,
    ) -> str:
        """Attach; the job's outcome: attached, already_attached, no_recording, retry, failed,
        or the requester rule's requester_mismatch / requester_unknown."""
        services = self._services.get()
        check = requester.check_for(self._config.privacy.match_requester, job.door)
        try:
            with store_calls(self._config):
                result = attach_replay(event, services, first_at, check)
        except RetryLater as exc:
            return self._retry_or_fail(
                job, event, exc.reason, exc.retry_after, attempt, first_at, exc.retry_by
            )
        except AttachLater as exc:
            return self._retry_or_fail(job, event, exc.reason, exc.retry_after, attempt, first_at)
        except PermanentFailure as exc:
            self._fail(job, raw, event, exc.reason, attempt, first_at, failure=exc)
            return "failed"
        except AttachRefused as exc:
            self._fail(job, raw, event, exc.reason, attempt, first_at)
            return "failed"
        except StoreUnavailable as exc:
            # Our own state store, not a vendor: an outage is transient, not a bug.
            log.warning("job %s: Redis unavailable: %s", job.job_id, exc)
            return self._retry_or_fail(job, event, "Redis was unavailable", None, attempt, first_at)
        except TimeLimitExceeded:
            limit = self._config.worker.job_time_limit_seconds
            reason = f"the job ran longer than worker.job_time_limit_seconds ({limit:g} s)"
            log.warning("job %s: %s", job.job_id, reason)
            return self._retry_or_fail(job, event, reason, None, attempt, first_at)
        except Shutdown:
            # The worker is stopping with this job in flight: it goes back on the queue.
            reason = "the worker stopped during the job"
            return self._retry_or_fail(job, event, reason, None, attempt, first_at)
        except Exception as exc:  # a bug or an unforeseen answer: retry a few times
            log.exception("job %s: unexpected error", job.job_id)
            reason = f"unexpected error: {type(exc).__name__}"
            if attempt >= retry_policy.MAX_ATTEMPTS_ON_UNEXPECTED_ERROR:
                self._fail(job, raw, event, reason, attempt, first_at)
                return "failed"
            return self._retry_or_fail(job, event, reason, None, attempt, first_at)
        if result.refused is not None:
            # Its own outcome, not a failure: retrying cannot change whose ticket it is.
            log.warning(
                "job %s: refused by the requester rule: %s",
                job.job_id,
                result.refused.reason,
                extra={"outcome": result.refused.outcome},
            )
            return result.refused.outcome
        if result.no_recording:
            log.info(
                "job %s: PostHog has no recording of %s; %s",
                job.job_id,
                event.session_id,
                f"told {event.target_label}" if result.written else "already said so",
                extra={"outcome": "no_recording"},
            )
            return "no_recording"
        if result.already_attached:
            log.info(
                "job %s: %s already on %s",
                job.job_id,
                event.session_id,
                event.target_label,
                extra={"outcome": "already_attached"},
            )
            return "already_attached"
        log.info(
            "job %s: attached %s to %s (%s)%s",
            job.job_id,
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
        job: Job,
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
            self._fail(job, job.args[0], event, f"{give_up}: {reason}", attempt, first_at)
            return "failed"
        log.info(
            "job %s: attempt %d failed (%s); retrying in %.1f s",
            job.job_id,
            attempt,
            reason,
            delay,
            extra={"outcome": "retry"},
        )
        retry = job.with_options(
            **{
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
        job: Job,
        raw: Any,
        event: BugReport | None,
        reason: str,
        attempt: int,
        first_at: float,
        failure: IntegrationError | None = None,
    ) -> None:
        log.warning("job %s failed: %s", job.job_id, reason, extra={"outcome": "failed"})
        now = time.time()
        failed = FailedJob(
            job_id=job.job_id,
            event=raw,
            session_id=event.session_id if event else session_of(raw),
            target=event.target if event else None,
            reason=reason,
            attempts=attempt,
            first_failure_at=first_at,
            last_failure_at=now,
            door=job.door,
        )
        _patiently("record a failed job", lambda: self._failed.record(failed))
        if event is not None:
            # Let agents see the failure on the ticket, where the helpdesk has a way.
            helpdesk_of(event.ticket).mark_failed(event.ticket, self._services.get(), failure)
