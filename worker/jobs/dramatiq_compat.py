"""Every use of dramatiq's internals, in one place.

dramatiq's public API does not cover three things replay-attach needs, so this
module leans on its Redis broker's internals (as of dramatiq 2.2):

* ``_RedisConsumer`` (its ``message_cache``, ``outstanding_message_count``,
  ``prefetch``, ``timeout``) and ``RedisBroker.consumer_class``, to set aside
  undecodable messages and to fetch in batches;
* the broker's ``do_nack`` command and ``broker_id``, to find and set aside one held
  message (in the set of held messages that ``worker.jobs.messages.acks_key`` names);
* ``dramatiq.cli``'s argument parser and ``main``, to run worker processes;
* the exception a ``MessageProxy`` was failed with (``_exception``), to say why dramatiq
  dead-lettered a message.

dramatiq's formats (its message JSON, its keys in Redis) are ``worker.jobs.messages``'s,
which follows them without importing dramatiq, so that producers need none.

``tests/integration/test_dramatiq_compat.py`` checks each of these against the installed
dramatiq, so an upgrade that removes one fails there, by name, rather than in
production; ``pyproject.toml`` allows only the versions tested.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import dramatiq.cli
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import DecodeError

from worker.jobs.messages import acks_key, queue_keys

log = logging.getLogger(__name__)

#: Called with (Redis message id, raw data, reason) for a message that cannot be decoded.
UndecodableHandler = Callable[[str, bytes, str], None]

__all__ = [
    "ReplayAttachBroker",
    "UndecodableHandler",
    "failure_of",
    "run_worker_processes",
]


class _BatchedQuarantiningConsumer(_RedisConsumer):
    """dramatiq's Redis consumer with two changes.

    It sets aside a message it cannot decode and carries on. dramatiq's consumer
    raises on such a message; its worker then restarts the consumer and drops
    the other messages it had prefetched, which stay marked as held by this
    (live) worker and so never run until it restarts.

    And while its prefetch is (nearly) full, it waits for the worker threads to
    finish messages instead of polling. dramatiq's consumer, finding no free
    slot, sleeps 5, 10, 20... ms and looks again, and under load fetches one
    message per Redis round trip. Here it sleeps until half of the slots are
    free, then fetches that many in one round trip. dramatiq's prefetch is
    twice the threads, so the threads are still busy with the other half: none
    waits longer than that round trip.
    """

    broker: ReplayAttachBroker

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
        broker = self.broker
        client = broker.client
        acks = acks_key(broker.broker_id, self.queue_name, broker.namespace)
        held = [i.decode() for i in client.smembers(acks)]  # type: ignore[union-attr]
        messages_key = queue_keys(self.queue_name, broker.namespace)[1]
        payloads = client.hmget(messages_key, held) if held else []
        for redis_id, payload in zip(held, payloads, strict=True):
            if payload == data:
                log.error("set aside undecodable message %s: %s", redis_id, reason)
                if broker.on_undecodable is not None:
                    broker.on_undecodable(redis_id, data, reason)
                # nack keeps the raw data in dramatiq's dead letters for inspection.
                broker.do_nack(self.queue_name, redis_id)
                return
        log.error("could not find the undecodable message to set it aside: %s", reason)


class ReplayAttachBroker(RedisBroker):
    """dramatiq's RedisBroker whose consumers set undecodable messages aside
    (handing them to ``on_undecodable``) and fetch in batches, and whose queues
    can each have their own idle poll.

    dramatiq polls every queue and wakes every worker thread at its one
    ``worker_timeout``. Only the bug-report queue needs to be quick (a new
    event should not wait a second); the delay queue and idle threads can
    wake once a second.
    """

    def __init__(
        self,
        *args: Any,
        on_undecodable: UndecodableHandler | None = None,
        idle_poll_ms: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.on_undecodable = on_undecodable
        #: The longest idle poll, in ms, of the queues named; others use the worker timeout.
        self.idle_poll_ms = dict(idle_poll_ms or {})

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _BatchedQuarantiningConsumer

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        return super().consume(queue_name, prefetch, self.idle_poll_ms.get(queue_name, timeout))


def run_worker_processes(
    broker_module: str, processes: int, threads: int, shutdown_timeout_ms: int
) -> int:
    """Run dramatiq's worker command (its forking parent) on ``module:broker``; its exit status."""
    parser = dramatiq.cli.make_argument_parser()  # type: ignore[no-untyped-call]
    args = parser.parse_args(
        [
            broker_module,
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(shutdown_timeout_ms),
            # Each process sets up its logging itself (worker.logs): text or JSON.
            "--skip-logging",
        ]
    )
    return int(dramatiq.cli.main(args))  # type: ignore[no-untyped-call]


def failure_of(message: MessageProxy) -> BaseException | None:
    """The exception dramatiq failed ``message`` with, if it kept one."""
    error = getattr(message, "_exception", None)
    return error if isinstance(error, BaseException) else None
