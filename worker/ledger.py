"""The attachment ledger: what has landed on which ticket, kept in Redis.

For each (ticket, session) pair a hash records every step of the attachment
(``note``, ``tag``, ``remote_link``, ``comment``) as ``pending:<time>`` while a
write is in flight and ``done:<time>`` once the vendor confirmed it, plus the
minted ``link``. A step found ``pending`` by a later attempt had an uncertain
outcome (worker killed, response lost), so the ticket itself is read before
writing again. Two locks keep concurrent workers apart: one per (ticket,
session) for the writes, one per PostHog session for minting.

Both locks are leases: a short TTL renewed by a background thread for as long
as the holder runs, however long its HTTP calls take. A killed worker stops
renewing, so its locks lapse within ``LOCK_LEASE_SECONDS``, before dramatiq
(after ``broker.heartbeat_timeout_seconds``) hands its jobs to another worker;
a fixed TTL long enough for the slowest job would block that redo for as long.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import redis
from redis.lock import Lock

from worker import constants

log = logging.getLogger(__name__)

#: A held lock's time to live. Its holder renews it every ``LOCK_RENEW_SECONDS``;
#: a dead holder's lock lapses within this. Shorter than the default
#: ``broker.heartbeat_timeout_seconds`` (15), so a dead worker's locks are
#: usually gone by the time dramatiq redelivers its jobs. (Fixed TTLs long
#: enough for the slowest job kept a killed worker's tickets locked for minutes.)
LOCK_LEASE_SECONDS = 10.0
#: How often a held lock's TTL is reset: several renewals in a row may fail (a
#: Redis restart) before the lease lapses under a live holder.
LOCK_RENEW_SECONDS = 2.0


class StepState(Enum):
    NOT_STARTED = "not_started"
    PENDING = "pending"
    DONE = "done"


class LockBusy(Exception):
    """Another worker holds the lock; try again shortly."""


class Ledger:
    def __init__(self, client: redis.Redis, project_id: int) -> None:
        self._redis = client
        self._project_id = project_id

    @staticmethod
    def key(target: str, session_id: str) -> str:
        return constants.ATTACHMENT_KEY.format(target=target, session=session_id)

    def find(
        self, target: str | None = None, session_id: str | None = None
    ) -> list[tuple[str, str, dict[str, str]]]:
        """(target, session, record) of every pair matching the given parts (SCAN, not KEYS)."""
        pattern = self.key(target or "*", session_id or "*")
        prefix = self.key("", "").rstrip(":")
        found = []
        for raw in self._redis.scan_iter(match=pattern, count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            # {prefix}:{system}:{ticket}:{session}; session ids contain no ':'.
            found_target, _, found_session = key[len(prefix) + 1 :].rpartition(":")
            found.append((found_target, found_session, self.read(found_target, found_session)))
        return sorted(found)

    def read(self, target: str, session_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self._redis.hgetall(self.key(target, session_id))  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items()}

    @staticmethod
    def state(record: dict[str, str], step: str) -> StepState:
        value = record.get(step, "")
        if value.startswith("done:"):
            return StepState.DONE
        if value.startswith("pending:"):
            return StepState.PENDING
        return StepState.NOT_STARTED

    @staticmethod
    def pending() -> str:
        return f"pending:{time.time():.3f}"

    @staticmethod
    def done() -> str:
        return f"done:{time.time():.3f}"

    def write(
        self,
        target: str,
        session_id: str,
        fields: dict[str, str],
        clear: tuple[str, ...] = (),
    ) -> None:
        """Set ``fields`` and delete ``clear`` in one round trip (one MULTI/EXEC)."""
        if not fields and not clear:
            return
        key = self.key(target, session_id)
        pipe = self._redis.pipeline(transaction=True)
        if fields:
            pipe.hset(key, mapping=dict(fields.items()))  # mypy: a plain dict is invariant
        if clear:
            pipe.hdel(key, *clear)
        pipe.expire(key, constants.LEDGER_TTL_SECONDS)
        pipe.execute()

    @contextmanager
    def attach_lock(self, target: str, session_id: str) -> Iterator[None]:
        """Exclusive right to write to this ticket for this session; raises LockBusy."""
        lock = _lease(
            self._redis, constants.ATTACH_LOCK_KEY.format(target=target, session=session_id)
        )
        if not lock.acquire(blocking=False):
            raise LockBusy(target)
        with _renewed(lock):
            yield

    @contextmanager
    def mint_lock(self, session_id: str) -> Iterator[None]:
        """Serialise minting per PostHog session; waits for a concurrent mint to finish."""
        lock = _lease(
            self._redis,
            constants.MINT_LOCK_KEY.format(project=self._project_id, session=session_id),
            sleep=0.05,
        )
        if not lock.acquire(blocking=True, blocking_timeout=constants.MINT_LOCK_SECONDS):
            raise LockBusy(f"mint:{session_id}")
        with _renewed(lock):
            yield


def _lease(client: redis.Redis, name: str, sleep: float = 0.1) -> Lock:
    # thread_local=False: the renewing thread must see the token the holder got.
    return Lock(client, name, timeout=LOCK_LEASE_SECONDS, sleep=sleep, thread_local=False)


class _LeaseKeeper:
    """One thread per process renews every lock held in it (not a thread per lock)."""

    def __init__(self) -> None:
        self._held: set[Lock] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, lock: Lock) -> None:
        with self._guard:
            self._held.add(lock)
            # A forked worker process inherits the object but not the thread.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="replay-attach lock leases", daemon=True
                )
                self._thread.start()

    def drop(self, lock: Lock) -> None:
        with self._guard:
            self._held.discard(lock)

    def _run(self) -> None:
        while True:
            time.sleep(LOCK_RENEW_SECONDS)
            with self._guard:
                held = list(self._held)
            for lock in held:
                try:
                    lock.reacquire()
                except redis.exceptions.LockError:
                    # Lapsed (Redis unreachable for a whole lease) and maybe taken
                    # since, or released an instant ago, which is no news.
                    with self._guard:
                        if lock in self._held:
                            self._held.discard(lock)
                            log.warning("lost the lock %s while holding it", lock.name)
                except redis.RedisError as exc:
                    log.warning("could not renew the lock %s: %s", lock.name, exc)


_leases = _LeaseKeeper()


@contextmanager
def _renewed(lock: Lock) -> Iterator[None]:
    """Keep an acquired lock alive until the block ends, then release it."""
    keeper = _leases
    keeper.hold(lock)
    try:
        yield
    finally:
        keeper.drop(lock)
        _release_quietly(lock)


def _release_quietly(lock: Lock) -> None:
    # The lock may have lapsed (Redis unreachable for a whole lease), or Redis may
    # be unreachable now: either way it is free within a lease, and the job's
    # own outcome matters more than this.
    try:
        lock.release()
    except redis.exceptions.LockError:
        pass
    except redis.RedisError as exc:
        log.warning("could not release the lock %s (it lapses by itself): %s", lock.name, exc)
