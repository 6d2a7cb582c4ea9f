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
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from redis.commands.core import Script

from worker import constants
from worker.broker import queue_keys

log = logging.getLogger(__name__)

#: How often each worker process looks for due retries (so a retry runs at
#: most this late).
POLL_SECONDS = 0.25
#: Messages moved per script call.
BATCH = 500

_PROMOTE = """
local due = redis.call("zrangebyscore", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, ARGV[2])
for _, id in ipairs(due) do
  local data = redis.call("hget", KEYS[2], id)
  if data then
    redis.call("hset", KEYS[4], id, data)
    redis.call("rpush", KEYS[3], id)
  end
  redis.call("hdel", KEYS[2], id)
  redis.call("zrem", KEYS[1], id)
end
return #due
"""


def schedule_retry(
    broker: RedisBroker, message: dramatiq.Message[Any], delay_seconds: float
) -> None:
    """Store ``message`` to be put back on its queue after ``delay_seconds``."""
    copy = message.copy(options={"redis_message_id": str(uuid.uuid4())})
    copy.options.pop("eta", None)
    due_ms = int((time.time() + delay_seconds) * 1000)
    member = copy.options["redis_message_id"]
    pipe = broker.client.pipeline(transaction=True)
    pipe.hset(constants.SCHEDULED_MESSAGES_KEY, member, copy.encode())
    pipe.zadd(constants.SCHEDULED_KEY, {member: due_ms})
    pipe.execute()


def promote_due(
    broker: RedisBroker, queue_name: str, script: Script, now: float | None = None
) -> int:
    """Move every due retry onto ``queue_name`` with the registered ``_PROMOTE`` script."""
    now_ms = int((time.time() if now is None else now) * 1000)
    queue_key, messages_key = queue_keys(broker, queue_name)
    moved = 0
    while True:
        count = int(
            script(
                keys=[
                    constants.SCHEDULED_KEY,
                    constants.SCHEDULED_MESSAGES_KEY,
                    queue_key,
                    messages_key,
                ],
                args=[now_ms, BATCH],
            )
        )
        moved += count
        if count < BATCH:
            return moved


def scheduled_count(client: redis.Redis) -> int:
    return int(client.zcard(constants.SCHEDULED_KEY))


class RetryScheduler(Middleware):
    """Runs the promoting thread in every worker process (and in-process ``Worker``)."""

    def __init__(self, queue_name: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.queue_name = queue_name
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, RedisBroker)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="replay-attach retry scheduler", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, broker: RedisBroker) -> None:
        script = broker.client.register_script(_PROMOTE)
        while not self._stop.wait(self.poll_seconds):
            try:
                promote_due(broker, self.queue_name, script)
            except redis.RedisError as exc:
                # Redis restarting: the retries are still in it; try again shortly.
                log.warning("could not move due retries onto the queue: %s", exc)
