"""Scheduled retries that live in Redis until they are due, never in a worker's memory.

dramatiq's own delayed messages are fetched by each worker and held in memory
until their time comes; on a Redis connection error the worker drops that
in-memory list while Redis still records the messages as held by the (live)
worker, so they run again only once the worker restarts (Bogdanp/dramatiq#527).
replay-attach therefore schedules its retries itself: a sorted set
(``SCHEDULED_KEY``, scored by due time in ms) and a hash of encoded messages
(``SCHEDULED_MESSAGES_KEY``). Every worker process runs a small thread that
moves due messages onto the dramatiq queue with one atomic script, exactly as
dramatiq's own enqueue stores them; several workers doing so at once is safe.

The thread sleeps until the earliest retry is due, which the same script
reports, and is woken early when its own process schedules one due sooner. A
retry scheduled by another process is seen at the next look, at most
``MAX_SLEEP_SECONDS`` later: normally its own process promotes it on time, and
the others are there for when that process has died. An idle process thus
wakes for retries at most once a second.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from redis.commands.core import Script

from worker import keys
from worker.attach.tickets import Ticket
from worker.jobs.messages import Job, decode, queue_keys, stored
from worker.lua import lua_script

log = logging.getLogger(__name__)

#: The longest a worker process sleeps between looks for due retries: how late
#: a retry scheduled by another process that has since died is promoted.
MAX_SLEEP_SECONDS = 1.0
#: Messages moved per script call.
BATCH = 500

_PROMOTE = lua_script(__name__, "retry_promote.lua")


def schedule_retry(broker: RedisBroker, job: Job, delay_seconds: float) -> None:
    """Store ``job`` to be put back on its queue after ``delay_seconds``.

    The process's ``RetryScheduler`` (if the broker has one) is told when it is due.
    """
    # dramatiq's own delay, if a message ever carried one, would hold it back a second time.
    message = stored(replace(job, options={k: v for k, v in job.options.items() if k != "eta"}))
    due_ms = int((time.time() + delay_seconds) * 1000)
    pipe = broker.client.pipeline(transaction=True)
    pipe.hset(keys.SCHEDULED_MESSAGES_KEY, message.redis_id, message.data)
    pipe.zadd(keys.SCHEDULED_KEY, {message.redis_id: due_ms})
    pipe.execute()
    for middleware in broker.middleware:
        if isinstance(middleware, RetryScheduler):
            middleware.due_at(due_ms / 1000)


def promote_due(
    broker: RedisBroker, queue_name: str, script: Script, now: float | None = None
) -> tuple[int, float | None]:
    """Move every due retry onto ``queue_name`` with the registered ``_PROMOTE`` script.

    Returns how many were moved and when the earliest retry left is due (time.time()
    seconds), or None when none is left.
    """
    now_ms = int((time.time() if now is None else now) * 1000)
    queue_key, messages_key = queue_keys(queue_name, broker.namespace)
    moved = 0
    while True:
        raw_count, earliest_ms = script(
            keys=[
                keys.SCHEDULED_KEY,
                keys.SCHEDULED_MESSAGES_KEY,
                queue_key,
                messages_key,
            ],
            args=[now_ms, BATCH],
        )
        count = int(raw_count)
        moved += count
        if count < BATCH:
            return moved, None if earliest_ms is None else float(earliest_ms) / 1000


@dataclass(frozen=True)
class WaitingRetry:
    """A job waiting in Redis for its next attempt, as ``status`` shows it."""

    job_id: str
    session_id: str | None
    target: str | None
    #: Attempts made so far (each failed).
    attempts: int
    next_attempt_at: float
    last_error: str | None


def waiting_retries(client: redis.Redis, limit: int = 1000) -> list[WaitingRetry]:
    """The jobs waiting for a retry, the soonest due first (at most ``limit``)."""
    due: list[tuple[bytes, float]] = client.zrange(  # type: ignore[assignment]
        keys.SCHEDULED_KEY, 0, limit - 1, withscores=True
    )
    if not due:
        return []
    found: list[bytes | None] = client.hmget(  # type: ignore[assignment]
        keys.SCHEDULED_MESSAGES_KEY, [member for member, _ in due]
    )
    return [
        _waiting(data, score / 1000)
        for (_, score), data in zip(due, found, strict=True)
        if data is not None
    ]


def _waiting(data: bytes, due: float) -> WaitingRetry:
    try:
        job = decode(data)
    except ValueError:
        job = Job(job_id="?", queue_name="", args=())
    args = job.args or (None,)
    event = args[0] if isinstance(args[0], dict) else {}
    if isinstance(event.get("zendesk_ticket"), int):
        target: str | None = str(Ticket.zendesk(event["zendesk_ticket"]))
    elif isinstance(event.get("jira_issue"), str):
        target = str(Ticket.jira(event["jira_issue"]))
    else:
        target = None
    session = event.get("session_id")
    return WaitingRetry(
        job_id=job.job_id,
        session_id=session if isinstance(session, str) else None,
        target=target,
        attempts=job.attempts,
        next_attempt_at=due,
        last_error=job.last_error,
    )


def scheduled_count(client: redis.Redis) -> int:
    return int(client.zcard(keys.SCHEDULED_KEY))


class RetryScheduler(Middleware):
    """Runs the promoting thread in every worker process (and in-process ``Worker``)."""

    def __init__(self, queue_name: str, max_sleep_seconds: float = MAX_SLEEP_SECONDS) -> None:
        self.queue_name = queue_name
        self.max_sleep_seconds = max_sleep_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        #: When the thread will look next (time.time() seconds); guarded by ``_changed``.
        self._next_look = 0.0
        self._woken = False

    def due_at(self, due: float) -> None:
        """A retry was scheduled in this process for ``due``: look then if that is sooner."""
        with self._changed:
            if due < self._next_look:
                self._woken = True
                self._changed.notify()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, RedisBroker)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="replay-attach retry scheduler", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        with self._changed:
            self._woken = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, broker: RedisBroker) -> None:
        script = broker.client.register_script(_PROMOTE)
        while not self._stop.is_set():
            with self._changed:
                # A retry scheduled from here on, while the script runs, may be
                # due before the earliest the script reports: it wakes the wait.
                self._next_look = math.inf
                self._woken = False
            earliest = None
            try:
                _, earliest = promote_due(broker, self.queue_name, script)
            except redis.RedisError as exc:
                # Redis restarting: the retries are still in it; look again within
                # the longest sleep.
                log.warning("could not move due retries onto the queue: %s", exc)
            now = time.time()
            next_look = now + self.max_sleep_seconds
            if earliest is not None:
                next_look = max(now, min(next_look, earliest))
            with self._changed:
                if not self._woken:
                    self._next_look = next_look
                    self._changed.wait(next_look - now)
