"""The dramatiq broker and the pieces of the app that share its Redis.

``create_app(config)`` is the one place that wires the queue side together:
the RedisBroker (on ``REDIS_URL`` or the embedded Redis), the ``attach_replay``
actor and the failed-job store. Producers, the worker and the command line all
go through it, so they agree on queue, actor and key names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import DecodeError
from dramatiq.middleware import (
    CurrentMessage,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from worker import constants
from worker.config import Config
from worker.failed import FailedJob, FailedJobs

log = logging.getLogger(__name__)


def queue_keys(broker: RedisBroker, queue_name: str) -> tuple[str, str]:
    """dramatiq's Redis keys of a queue: the list of its message ids, the hash of their data.

    dramatiq's enqueue writes a message to both; the ones writing them without
    dramatiq's script (batched enqueues, promoted retries) and reading them
    (quarantine, status) name them through here.
    """
    key = f"{broker.namespace}:{queue_name}"
    return key, f"{key}.msgs"


#: Called with (Redis message id, raw data, reason) for a message that cannot be decoded.
UndecodableHandler = Callable[[str, bytes, str], None]


class _QuarantiningConsumer(_RedisConsumer):
    """dramatiq's Redis consumer with two changes.

    It sets aside a message it cannot decode and carries on. dramatiq's consumer
    raises on such a message; its worker then restarts the consumer and drops
    the other messages it had prefetched, which stay marked as held by this
    (live) worker and so never run until it restarts.

    And while its prefetch is (nearly) full, it waits for the worker threads
    to finish messages instead of polling. dramatiq's consumer, finding no
    free slot, sleeps 5, 10, 20... ms and looks again; under load it woke two
    or three times per message and fetched one message at a time, a Redis
    round trip each: a tenth of the worker's CPU per job. Here it sleeps until
    half of the slots is free, then fetches that many in one round trip.
    dramatiq's prefetch is twice the threads, so the threads are then still
    busy with the other half: none waits longer than that round trip. (Each
    wake-up of an idle thread costs a few hundred microseconds of CPU on
    shared machines, so fewer, larger fetches measure cheaper: at a quarter,
    the consumer thread took twice the CPU per job.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        #: Fetch only when at least this many slots are free (with no message held, all are).
        self.fetch_batch = max(1, self.prefetch // 2)
        self._slots_freed = threading.Condition()

    def _free_slots(self) -> int:
        return int(self.prefetch - self.outstanding_message_count)

    def __next__(self) -> Any:
        if not self.message_cache and self._free_slots() < self.fetch_batch:
            with self._slots_freed:
                # Bounded by the idle poll, so the consumer thread still checks
                # for shutdown, pauses and delayed messages as often as before.
                if not self._slots_freed.wait_for(
                    lambda: self._free_slots() >= self.fetch_batch, self.timeout / 1000
                ):
                    return None
        while True:
            try:
                return super().__next__()  # type: ignore[no-untyped-call]
            except DecodeError as exc:
                self._quarantine(exc.data, "the message is not valid dramatiq JSON")

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._slot_freed()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._slot_freed()

    def _slot_freed(self) -> None:
        # Wakes the consumer only once its batch is due (a no-op when it is not waiting).
        if self._free_slots() >= self.fetch_batch:
            with self._slots_freed:
                self._slots_freed.notify()

    def _quarantine(self, data: bytes, reason: str) -> None:
        broker: QuarantiningRedisBroker = self.broker
        acks = f"{broker.namespace}:__acks__.{broker.broker_id}.{self.queue_name}"
        members: set[bytes] = broker.client.smembers(acks)  # type: ignore[assignment]
        held = [i.decode() for i in members]
        payloads = broker.client.hmget(queue_keys(broker, self.queue_name)[1], held) if held else []
        for redis_id, payload in zip(held, payloads, strict=True):
            if payload == data:
                log.error("set aside undecodable message %s: %s", redis_id, reason)
                if broker.on_undecodable is not None:
                    broker.on_undecodable(redis_id, data, reason)
                # nack keeps the raw data in dramatiq's dead letters for inspection.
                broker.do_nack(self.queue_name, redis_id)
                return
        log.error("could not find the undecodable message to set it aside: %s", reason)


class QuarantiningRedisBroker(RedisBroker):
    """dramatiq's RedisBroker with two changes: undecodable messages are set
    aside (``_QuarantiningConsumer``), and each queue can have its own idle poll.

    dramatiq polls every queue and wakes every worker thread at its one
    ``worker_timeout``. Only the bug-report queue needs to be quick (a new
    event should not wait a second); a poll of the delay queue, or a thread's
    wake-up, every 100 ms would cost each idle process 2% of a core.
    """

    on_undecodable: UndecodableHandler | None = None

    def __init__(self, *args: Any, idle_poll_ms: dict[str, int] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        #: The longest idle poll, in ms, of the queues named; others use the worker timeout.
        self.idle_poll_ms = dict(idle_poll_ms or {})

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _QuarantiningConsumer

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        return super().consume(queue_name, prefetch, self.idle_poll_ms.get(queue_name, timeout))


#: A job is interrupted after this long (every HTTP call also has its own timeouts).
JOB_TIME_LIMIT_MS = 10 * 60 * 1000

#: redis-py's pool is bounded; many worker threads must not exhaust it.
REDIS_MAX_CONNECTIONS = 512


def resolve_redis_url(config: Config) -> str:
    """``broker.redis_url`` when set, else the embedded Redis under ``broker.data_dir``."""
    if config.broker.redis_url:
        return config.broker.redis_url
    from worker.embedded_redis import embedded_redis_url

    return embedded_redis_url(config.broker.data_dir)


def build_broker(config: Config, url: str) -> QuarantiningRedisBroker:
    from worker.scheduler import RetryScheduler

    middleware = [
        RetryScheduler(config.broker.queue),
        TimeLimit(time_limit=JOB_TIME_LIMIT_MS),
        ShutdownNotifications(),
        CurrentMessage(),
        # Our actor schedules its own retries and records its own failures.
        # This only catches what escapes it (Redis unreachable while recording
        # an outcome): a few delayed redeliveries instead of a silent drop.
        Retries(max_retries=5, min_backoff=5_000, max_backoff=60_000),
    ]
    pool = redis.ConnectionPool.from_url(
        url,
        # Sized for the worker threads plus the broker's own consumers.
        max_connections=REDIS_MAX_CONNECTIONS,
        # Finds a connection broken by a Redis restart before using it.
        health_check_interval=30,
    )
    return QuarantiningRedisBroker(
        client=redis.Redis(connection_pool=pool),
        middleware=middleware,
        idle_poll_ms={config.broker.queue: config.worker.idle_poll_ms},
        heartbeat_timeout=config.broker.heartbeat_timeout_seconds * 1000,
        maintenance_chance=config.broker.maintenance_chance_per_million,
    )


@dataclass
class App:
    config: Config
    broker: RedisBroker
    actor: dramatiq.Actor  # type: ignore[type-arg]
    failed: FailedJobs

    @property
    def redis(self) -> redis.Redis:
        client: redis.Redis = self.broker.client
        return client


def create_app(config: Config, url: str | None = None) -> App:
    from worker.jobs import JobRunner

    broker = build_broker(config, url or resolve_redis_url(config))
    failed = FailedJobs(broker.client, config.failed.retention_days)

    def record_undecodable(redis_id: str, data: bytes, reason: str) -> None:
        now = time.time()
        failed.record(
            FailedJob(
                job_id=redis_id,
                event=data.decode("utf-8", "replace")[:2000],
                session_id=None,
                target=None,
                reason=f"invalid message: {reason}",
                attempts=1,
                first_failure_at=now,
                last_failure_at=now,
            )
        )

    broker.on_undecodable = record_undecodable
    app = App(config=config, broker=broker, actor=None, failed=failed)  # type: ignore[arg-type]
    runner = JobRunner(app)

    def attach_replay(*args: object, **kwargs: object) -> None:
        runner.run(CurrentMessage.get_current_message())

    app.actor = dramatiq.actor(  # type: ignore[call-overload]
        attach_replay,
        actor_name=constants.ACTOR_NAME,
        queue_name=config.broker.queue,
        broker=broker,
        max_retries=5,
    )
    return app
