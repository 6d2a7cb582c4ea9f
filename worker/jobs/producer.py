"""Enqueueing bug reports: the producers' Python API.

    from worker import enqueue_bug_report, InvalidEvent

    job_id = enqueue_bug_report(session_id="0192...", zendesk_ticket=123)

The event is validated first (``InvalidEvent`` names the problem) and nothing
is enqueued when it is invalid. The configuration is read once per process, as
for the worker (``REPLAY_ATTACH_CONFIG`` / ``config.yaml``).

A producer needs neither the worker's actor nor the vendor clients, nor
dramatiq itself: it writes each message as dramatiq's default JSON encoder
writes a ``dramatiq.Message``, where dramatiq's own enqueue writes it (its data
in the queue's hash, its id at the end of the queue's list). Importing this
module imports only the event contract, the configuration and redis;
``tests/integration/test_dramatiq_compat.py`` checks the message against dramatiq's own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import redis

from worker import keys
from worker.attach.events import BugReport, parse_event, require_distinct_id
from worker.config import Config, load_config
from worker.jobs.redis_connection import redis_client, resolve_redis_url

#: Events per Redis round trip when enqueueing many.
BATCH_SIZE = 1000


class EncodedMessage(NamedTuple):
    """A bug report as dramatiq stores it: its Redis id, its job id, its bytes."""

    redis_id: str
    job_id: str
    data: bytes


def _message(
    queue_name: str,
    event: Any,
    message_id: str | None = None,
    delivery_id: str | None = None,
    door: str | None = None,
) -> EncodedMessage:
    """A message carrying ``event`` as its one argument, as ``dramatiq.Message.encode`` writes it.

    Every enqueued copy has its own Redis id, as with dramatiq's enqueue; the
    message id is the job id.
    """
    redis_id = str(uuid.uuid4())
    job_id = message_id or str(uuid.uuid4())
    options: dict[str, Any] = {"redis_message_id": redis_id}
    if delivery_id is not None:
        options[keys.OPTION_DELIVERY_ID] = delivery_id
    if door is not None:
        options[keys.OPTION_DOOR] = door
    fields = {
        "queue_name": queue_name,
        "actor_name": keys.ACTOR_NAME,
        "args": [event],
        "kwargs": {},
        "options": options,
        "message_id": job_id,
        "message_timestamp": int(time.time() * 1000),
    }
    return EncodedMessage(redis_id, job_id, json.dumps(fields, separators=(",", ":")).encode())


def encode_report(
    report: BugReport, queue_name: str, delivery_id: str | None = None, door: str | None = None
) -> EncodedMessage:
    """The message that enqueueing ``report`` writes, for writers of their own (the intake,
    which names its ``door``: the worker applies ``privacy.match_requester`` by it)."""
    return _message(queue_name, report.to_message(), delivery_id=delivery_id, door=door)


class BugReportQueue:
    """The dramatiq queue of bug-report events, written directly in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        queue_name: str,
        namespace: str = keys.DRAMATIQ_NAMESPACE,
        *,
        require_distinct_id: bool = False,
    ) -> None:
        self.client = client
        self.queue_name = queue_name
        self._queue_key, self._messages_key = keys.queue_keys(queue_name, namespace)
        #: ``posthog.require_distinct_id``: events without one are refused here.
        self.require_distinct_id = require_distinct_id

    def accept(self, report: BugReport) -> BugReport:
        """``report`` if this queue takes it; raise ``InvalidEvent`` otherwise."""
        return require_distinct_id(report) if self.require_distinct_id else report

    def _write(self, batch: Mapping[str, bytes]) -> None:
        # One MULTI/EXEC of two commands: a batch lands whole or not at all.
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self._messages_key, mapping=dict(batch))  # type: ignore[arg-type]
        pipe.rpush(self._queue_key, *batch)  # in the order the events came
        pipe.execute()

    def enqueue(self, report: BugReport) -> str:
        """Enqueue one validated event; return its job id."""
        encoded = encode_report(self.accept(report), self.queue_name)
        self._write({encoded.redis_id: encoded.data})
        return encoded.job_id

    def enqueue_many(self, reports: Iterable[BugReport], batch_size: int = BATCH_SIZE) -> int:
        """Enqueue events in batches of one Redis round trip each; return how many.

        Streams: memory stays constant whatever the number of events.
        """
        total = 0
        batch: dict[str, bytes] = {}
        for report in reports:
            encoded = encode_report(self.accept(report), self.queue_name)
            batch[encoded.redis_id] = encoded.data
            if len(batch) >= batch_size:
                self._write(batch)
                total += len(batch)
                batch.clear()
        if batch:
            self._write(batch)
            total += len(batch)
        return total

    def requeue(self, event: Any, job_id: str, door: str | None = None) -> None:
        """Enqueue ``event`` as received (valid or not) under an existing job id, from the
        ``door`` it first came through (the requester rule still applies to it)."""
        message = _message(self.queue_name, event, message_id=job_id, door=door)
        self._write({message.redis_id: message.data})


_default_queue: BugReportQueue | None = None
_default_lock = threading.Lock()


def queue_for(config: Config) -> BugReportQueue:
    """The bug-report queue on the configured Redis (the embedded one when unset)."""
    return BugReportQueue(
        redis_client(resolve_redis_url(config)),
        config.broker.queue,
        require_distinct_id=config.posthog.require_distinct_id,
    )


def default_queue() -> BugReportQueue:
    """The process-wide queue built from the configuration (on first use)."""
    global _default_queue
    with _default_lock:
        if _default_queue is None:
            _default_queue = queue_for(load_config())
        return _default_queue


def enqueue_bug_report(
    event: Mapping[str, Any] | BugReport | None = None,
    /,
    *,
    queue: BugReportQueue | None = None,
    **fields: Any,
) -> str:
    """Validate one event and enqueue it; return the job id.

    Give the event as a mapping, a ``BugReport``, or keyword arguments
    (``session_id=..., zendesk_ticket=...``). Raises ``InvalidEvent``.
    """
    report = parse_event(fields if event is None else event)
    return (queue or default_queue()).enqueue(report)


def enqueue_many(
    events: Iterable[Mapping[str, Any] | BugReport],
    *,
    queue: BugReportQueue | None = None,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Validate and enqueue events in batches; return how many.

    Events are validated as they stream: an invalid one raises ``InvalidEvent``
    after the batches before it were enqueued (validate first, as
    ``replay-attach enqueue --file`` does, for all or nothing).
    """
    reports = (parse_event(event) for event in events)
    return (queue or default_queue()).enqueue_many(reports, batch_size)
