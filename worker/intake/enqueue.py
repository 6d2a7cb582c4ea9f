"""What becomes of an accepted delivery: its ticket's status applied, its token's rate
taken, its reports written to the queue once, and the answer that tells the sender so."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from starlette.responses import JSONResponse, Response

from worker.attach.events import InvalidEvent, require_distinct_id
from worker.config import Config
from worker.intake.deliveries import (
    Delivery,
    DeliveryWriter,
    QueueFull,
    body_digest,
    dedupe_key,
)
from worker.intake.rates import TokenRates
from worker.intake.refusals import RETRY_AFTER_SECONDS, Refused
from worker.intake.sender import Accepted, Ignored, TicketStatus
from worker.intake.senders.bug_reports import DOOR as BUG_REPORTS_DOOR
from worker.intake.ticket_states import TicketStates
from worker.jobs.producer import encode_report
from worker.jobs.redis_connection import store_calls

log = logging.getLogger(__name__)


class Enqueuer:
    """Enqueues accepted deliveries over one process's delivery writer, ticket states and rates."""

    def __init__(
        self, config: Config, writer: DeliveryWriter, states: TicketStates, rates: TokenRates
    ) -> None:
        self.config = config
        self._writer = writer
        self._states = states
        self._rates = rates

    async def _record_status(self, door: str, status: TicketStatus) -> str | None:
        """Note a ticket solved (its links end later) or reopened, unless a later change of
        it came first; what to tell the sender."""
        after = self.config.privacy.revoke_after_solved_days
        if after is None:
            return None
        ends = time.time() + after * 86400
        with store_calls(self.config):
            applied = await self._states.apply(status, ends)
        if not applied.applied:
            told = f"{status.target} not changed: {applied.reason}"
        elif status.solved:
            at = datetime.fromtimestamp(ends, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
            told = f"{status.target} solved: its replay links end at {at}"
        else:
            told = f"{status.target} open: its replay links stay"
        log.info("%s: %s", door, told)
        return told

    async def _take_rate(self, token: str, events: int, resend_keys: tuple[str, ...]) -> None:
        """Count the events against the token's rate; 429 when it is over. A resend (its
        answer was lost) costs nothing more: it is answered as the first was."""
        with store_calls(self.config):
            wait = await self._rates.take(token, events, resend_keys)
        if wait is not None:
            per_minute = self.config.intake.events_per_minute_per_token
            raise Refused(
                429,
                f"this token may enqueue {per_minute} events per minute; send again later",
                "rate_limited",
                wait,
            )

    async def enqueue(self, door: str, accepted: Accepted, delivery_id: str) -> Response:
        """The answer to an accepted delivery: 202 enqueued (or resent), 200 ignored."""
        told = None
        if accepted.status is not None:
            told = await self._record_status(door, accepted.status)
        if isinstance(accepted.reports, Ignored):
            log.info("%s: ignored, %s", door, accepted.reports.reason)
            answer = {"ignored": accepted.reports.reason}
            if told:
                answer["ticket"] = told
            return JSONResponse(answer, status_code=200)
        if self.config.posthog.require_distinct_id:
            for number, report in enumerate(accepted.reports, start=1):
                try:
                    require_distinct_id(report)
                except InvalidEvent as exc:
                    where = f"event {number}: " if len(accepted.reports) > 1 else ""
                    raise InvalidEvent(f"{where}{exc}") from None
        dedupe_keys = tuple(dedupe_key(door, identity) for identity in accepted.identities)
        if accepted.token is not None:
            await self._take_rate(accepted.token, len(accepted.reports), dedupe_keys)
        queue = self.config.broker.queue
        messages = [encode_report(report, queue, delivery_id, door) for report in accepted.reports]
        delivery = Delivery(messages, body_digest(accepted.body), dedupe_keys)
        try:
            with store_calls(self.config):
                written = await self._writer.write(delivery)
        except QueueFull:
            raise Refused(
                503,
                "the queue is full (the workers are behind); send again later",
                "queue_full",
                RETRY_AFTER_SECONDS,
            ) from None
        if written.different_body and door == BUG_REPORTS_DOOR:
            raise Refused(422, "this Idempotency-Key was already used for another body")
        log.info(
            "%s: %s %s",
            door,
            "resent, already enqueued" if written.duplicate else "enqueued",
            ", ".join(written.job_ids),
        )
        headers = {"Idempotent-Replayed": "true"} if written.duplicate else None
        body: dict[str, object] = {"job_ids": written.job_ids}
        if told:
            body["ticket"] = told
        return JSONResponse(body, status_code=202, headers=headers)
