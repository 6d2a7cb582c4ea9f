"""Enqueueing bug reports: the producers' Python API.

    from worker.producer import enqueue_bug_report

    job_id = enqueue_bug_report(session_id="0192...", zendesk_ticket=123)

The event is validated first (``InvalidEvent`` names the problem) and nothing
is enqueued when it is invalid. The configuration is read once per process,
as for the worker (``REPLAY_ATTACH_CONFIG`` / ``config.yaml``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from worker.broker import App, create_app, queue_keys
from worker.config import load_config
from worker.events import BugReport, parse_event

#: Events per Redis round trip when enqueueing many.
BATCH_SIZE = 1000

_default_app: App | None = None
_default_lock = threading.Lock()


def default_app() -> App:
    """The process-wide app built from the configuration (on first use)."""
    global _default_app
    with _default_lock:
        if _default_app is None:
            _default_app = create_app(load_config())
        return _default_app


def enqueue_bug_report(
    event: Mapping[str, Any] | BugReport | None = None, /, *, app: App | None = None, **fields: Any
) -> str:
    """Validate one event and enqueue it; return the job id.

    Give the event as a mapping, a ``BugReport``, or keyword arguments
    (``session_id=..., zendesk_ticket=...``). Raises ``InvalidEvent``.
    """
    report = parse_event(fields if event is None else event)
    app = app or default_app()
    message = app.actor.message(report.to_message())
    app.broker.enqueue(message)
    return str(message.message_id)


def enqueue_many(app: App, events: Iterable[BugReport], batch_size: int = BATCH_SIZE) -> int:
    """Enqueue events in batches of one Redis round trip each; return how many.

    Each batch is one MULTI/EXEC transaction of two commands that write what
    dramatiq's enqueue writes for each message (its data in the queue's hash,
    its id at the end of the queue's list), so a batch lands whole or not at
    all. One command per message, as dramatiq's own enqueue sends, cost more
    CPU than building the messages. Streams: memory stays constant whatever
    the number of events. Enqueue middleware hooks are not called
    (replay-attach installs none that use them).
    """
    broker = app.broker
    actor = app.actor
    queue_key, messages_key = queue_keys(broker, actor.queue_name)
    total = 0
    batch: dict[str, bytes] = {}

    def flush() -> None:
        nonlocal total
        if not batch:
            return
        pipe = broker.client.pipeline(transaction=True)
        pipe.hset(messages_key, mapping=batch)  # type: ignore[arg-type]
        pipe.rpush(queue_key, *batch)  # in the order the events came
        pipe.execute()
        total += len(batch)
        batch.clear()

    for report in events:
        # As RedisBroker.enqueue does: every enqueued copy has its own Redis id.
        redis_id = str(uuid.uuid4())
        message = actor.message_with_options(args=(report.to_message(),), redis_message_id=redis_id)
        batch[redis_id] = message.encode()
        if len(batch) >= batch_size:
            flush()
    flush()
    return total
