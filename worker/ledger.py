"""The attachment ledger: what has landed on which ticket, kept in Redis.

For each (ticket, session) pair a hash records every step of the attachment
(``note``, ``tag``, ``remote_link``, ``comment``) as ``pending:<time>`` while a
write is in flight and ``done:<time>`` once the vendor confirmed it, plus the
minted ``link``. A step found ``pending`` by a later attempt had an uncertain
outcome (worker killed, response lost), so the ticket itself is read before
writing again. Two locks keep concurrent workers apart: one per (ticket,
session) for the writes, one per PostHog session for minting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

import redis
from redis.lock import Lock

from worker import constants


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

    def _set(self, target: str, session_id: str, field: str, value: str) -> None:
        key = self.key(target, session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, field, value)
        pipe.expire(key, constants.LEDGER_TTL_SECONDS)
        pipe.execute()

    def mark_pending(self, target: str, session_id: str, step: str) -> None:
        self._set(target, session_id, step, f"pending:{time.time():.3f}")

    def mark_done(self, target: str, session_id: str, step: str) -> None:
        self._set(target, session_id, step, f"done:{time.time():.3f}")

    def clear(self, target: str, session_id: str, step: str) -> None:
        self._redis.hdel(self.key(target, session_id), step)

    def remember_link(self, target: str, session_id: str, link: str) -> None:
        self._set(target, session_id, "link", link)

    def forget(self, target: str, session_id: str) -> None:
        self._redis.delete(self.key(target, session_id))

    @contextmanager
    def attach_lock(self, target: str, session_id: str) -> Iterator[None]:
        """Exclusive right to write to this ticket for this session; raises LockBusy."""
        lock = Lock(
            self._redis,
            constants.ATTACH_LOCK_KEY.format(target=target, session=session_id),
            timeout=constants.ATTACH_LOCK_SECONDS,
        )
        if not lock.acquire(blocking=False):
            raise LockBusy(target)
        try:
            yield
        finally:
            _release_quietly(lock)

    @contextmanager
    def mint_lock(self, session_id: str) -> Iterator[None]:
        """Serialise minting per PostHog session; waits for a concurrent mint to finish."""
        lock = Lock(
            self._redis,
            constants.MINT_LOCK_KEY.format(project=self._project_id, session=session_id),
            timeout=constants.MINT_LOCK_SECONDS,
            sleep=0.05,
        )
        if not lock.acquire(blocking=True, blocking_timeout=constants.MINT_LOCK_SECONDS):
            raise LockBusy(f"mint:{session_id}")
        try:
            yield
        finally:
            _release_quietly(lock)


def _release_quietly(lock: Lock) -> None:
    # The lock may have expired (a very slow call); its timeout already freed it.
    try:
        lock.release()
    except redis.exceptions.LockError:
        pass
