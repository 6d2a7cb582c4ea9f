"""Locks held as leases: a short TTL renewed in the background for as long as the holder runs.

A killed worker stops renewing, so its locks lapse within ``LOCK_LEASE_SECONDS``,
before dramatiq (after ``broker.heartbeat_timeout_seconds``) hands its jobs to
another worker; a fixed TTL long enough for the slowest job would block that
redo for as long. The ledger takes and releases its leases in its own scripts,
together with the record's changes; ``exclusive`` holds a lease on its own (a
revocation's, which is the session's mint lock: a share and a revocation of one
session never overlap). This module keeps held leases alive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator

import redis

from worker.errors import ReplayAttachError
from worker.lua import lua_script

log = logging.getLogger(__name__)

#: A held lock's time to live: a dead holder's lock lapses within this. Shorter
#: than the default ``broker.heartbeat_timeout_seconds`` (15), so a dead worker's
#: locks are usually gone by the time dramatiq redelivers its jobs.
LOCK_LEASE_SECONDS = 10.0
#: How often a held lock's TTL is reset: several renewals in a row may fail (a
#: Redis restart) before the lease lapses under a live holder.
LOCK_RENEW_SECONDS = 2.0

_RENEW = lua_script(__name__, "lease_renew.lua")

_RELEASE = lua_script(__name__, "lease_release.lua")


class LockBusy(ReplayAttachError):
    """Another worker holds the lock; try again shortly."""


class Lease:
    """A lock held under a random token, renewed by the process's keeper while held."""

    __slots__ = ("client", "name", "token")

    def __init__(self, client: redis.Redis, name: str, token: str) -> None:
        self.client = client
        self.name = name
        self.token = token

    def __repr__(self) -> str:  # never the token
        return f"Lease({self.name!r})"


def lease_ms() -> int:
    """A lease's time to live in milliseconds, as Redis's ``PX`` takes it."""
    return int(LOCK_LEASE_SECONDS * 1000)


class LeaseKeeper:
    """One thread per process renews every lease held in it, in one round trip per client."""

    def __init__(self) -> None:
        self._held: set[Lease] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, lease: Lease) -> None:
        with self._guard:
            self._held.add(lease)
            # A forked worker process inherits the object but not the thread.
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="replay-attach lock leases", daemon=True
                )
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        with self._guard:
            self._held.discard(lease)

    def _run(self) -> None:
        while True:
            time.sleep(LOCK_RENEW_SECONDS)
            with self._guard:
                held = list(self._held)
            by_client: dict[int, list[Lease]] = {}
            for lease in held:
                by_client.setdefault(id(lease.client), []).append(lease)
            for leases in by_client.values():
                self._renew(leases)

    def _renew(self, leases: list[Lease]) -> None:
        try:
            pipe = leases[0].client.pipeline(transaction=False)
            for lease in leases:
                pipe.eval(_RENEW, 1, lease.name, lease.token, lease_ms())
            renewed = pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not renew %d lock(s): %s", len(leases), exc)
            return
        for lease, ok in zip(leases, renewed, strict=True):
            if ok:
                continue
            # Lapsed (Redis unreachable for a whole lease) and maybe taken
            # since, or released an instant ago, which is no news.
            with self._guard:
                if lease in self._held:
                    self._held.discard(lease)
                    log.warning("lost the lock %s while holding it", lease.name)


#: The process's keeper of held leases.
leases = LeaseKeeper()


#: How often a holder-to-be looks again at a lock that is taken.
LOCK_WAIT_POLL_SECONDS = 0.05


def acquire(lease: Lease, wait_seconds: float = 0.0) -> None:
    """Take ``lease``'s lock, held by the process's keeper from then on; raises ``LockBusy``
    when it is still taken after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    while not lease.client.set(lease.name, lease.token, nx=True, px=lease_ms()):
        if time.monotonic() >= deadline:
            raise LockBusy(lease.name)
        time.sleep(LOCK_WAIT_POLL_SECONDS)
    leases.hold(lease)


@contextlib.contextmanager
def exclusive(client: redis.Redis, name: str, wait_seconds: float = 0.0) -> Iterator[Lease]:
    """Hold the lock ``name`` for the block, as a lease; raises ``LockBusy`` when it is
    still taken after ``wait_seconds``."""
    lease = Lease(client, name, uuid.uuid4().hex)
    acquire(lease, wait_seconds)
    try:
        yield lease
    finally:
        leases.drop(lease)
        client.eval(_RELEASE, 1, lease.name, lease.token)
