"""The attachment ledger: what has landed on which ticket, kept in Redis.

For each (ticket, session) pair a hash records every step of the attachment
(``note``, ``tag``, ``remote_link``, ``comment``) as ``pending:<time>`` while a
write is in flight and ``done:<time>`` once the vendor confirmed it, plus the
minted ``link``. A step found ``pending`` by a later attempt had an uncertain
outcome (worker killed, response lost), so the ticket itself is read before
writing again. Two locks keep concurrent workers apart: one per (ticket,
session) for the writes, one per PostHog session for minting.

Both locks are leases (``worker.attach.leases``): a killed worker's lapse by
themselves.

Round trips are kept few, because a job waits on each: opening an attachment
takes its lock, reads its record, takes the mint lock when there is no link
yet, and marks ``pending`` the writes not safe to repeat that have not started
(``reserve``), all in one script; every later change is written together with
the lock releases that are due at that point.
A job that finds nothing done makes two round trips in all: the open, and the
save at the end. A reserved write that is never attempted (an earlier step
failed) is cleared by the attempt's last save, or when the block ends; only a
worker killed between the open and the write leaves it ``pending``, and the
redo then reads the ticket first, as after any attempt that ended without an
answer.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TypeVar

import redis
from redis.commands.core import Script

from worker import keys
from worker.attach.leases import Lease, LockBusy, acquire, lease_ms, leases
from worker.attach.links import REVOKED as LINK_REVOKED
from worker.lua import lua_script

T = TypeVar("T")

log = logging.getLogger(__name__)

#: How long the ledger remembers a (ticket, session) pair. A duplicate event
#: arriving later than this is checked against the ticket itself.
LEDGER_TTL_SECONDS = 30 * 24 * 3600
#: How long a job waits for another worker's mint of the same session to end.
MINT_WAIT_SECONDS = 60

_OPEN = lua_script(__name__, "ledger_open.lua")
_SAVE = lua_script(__name__, "ledger_save.lua")


class StepState(Enum):
    NOT_STARTED = "not_started"
    PENDING = "pending"
    DONE = "done"


class Ledger:
    def __init__(self, client: redis.Redis, project_id: int) -> None:
        self._redis = client
        self._project_id = project_id
        self._open = client.register_script(_OPEN)
        self._save = client.register_script(_SAVE)

    @staticmethod
    def key(target: str, session_id: str) -> str:
        return keys.ATTACHMENT_KEY.format(target=target, session=session_id)

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

    @contextmanager
    def attachment(
        self, target: str, session_id: str, reserve: tuple[str, ...] = ()
    ) -> Iterator[Attachment]:
        """Exclusive right to write to this ticket for this session; raises ``LockBusy``.

        ``reserve`` names the writes not safe to repeat: those not in the record
        yet are marked ``pending`` in the same round trip, so that no save is
        needed before writing them. Whatever the block leaves held is released,
        and whatever reservation it leaves unattempted is cleared, when it ends.
        """
        token = uuid.uuid4().hex
        attach = Lease(
            self._redis, keys.ATTACH_LOCK_KEY.format(target=target, session=session_id), token
        )
        mint = Lease(
            self._redis,
            keys.MINT_LOCK_KEY.format(project=self._project_id, session=session_id),
            token,
        )
        link_key = keys.LINK_KEY.format(session=session_id)
        opened = self._open(
            keys=[attach.name, self.key(target, session_id), mint.name, link_key],
            args=[token, lease_ms(), LEDGER_TTL_SECONDS, self.pending(), *reserve],
        )
        if not opened:
            raise LockBusy(target)
        minting, flat, link_state = opened
        record = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
        leases.hold(attach)
        if minting:
            leases.hold(mint)
        entry = Attachment(
            self._redis,
            self._save,
            self.key(target, session_id),
            record,
            attach,
            mint,
            bool(minting),
            reserved=[name for name in reserve if name not in record],
            link_key=link_key,
            link_revoked=link_state == LINK_REVOKED.encode() if minting else None,
        )
        try:
            yield entry
        finally:
            entry._release_remaining()


class Attachment:
    """One (ticket, session) record, opened under its lock by ``Ledger.attachment``."""

    def __init__(
        self,
        client: redis.Redis,
        save_script: Script,
        key: str,
        record: dict[str, str],
        attach: Lease,
        mint: Lease,
        mint_held: bool,
        reserved: list[str] | None = None,
        link_key: str = "",
        link_revoked: bool | None = None,
    ) -> None:
        self._redis = client
        self._save_script = save_script
        self._key = key
        #: The record as it was when opened, before its reservations.
        self.record = record
        #: Writes this attempt reserved as ``pending`` and has not started yet.
        self._unattempted = list(reserved or [])
        self.reserved = frozenset(self._unattempted)
        self._attach = attach
        self._mint = mint
        self._attach_held = True
        self._mint_held = mint_held
        #: The mint is over; the mint lock goes with the next write.
        self._mint_done = False
        #: Whether the session's link was revoked, read with the mint lock (None: not read).
        self._link_key = link_key
        self._link_revoked = link_revoked

    def mint(self, make_token: Callable[[bool], T]) -> T:
        """Run ``make_token`` under the session's mint lock (waiting for another worker's mint
        or a revocation), telling it whether the session's link was revoked.

        The lock is released with the next ``save``: the one before the first
        write that is not safe to repeat, or the last one.
        """
        if not self._mint_held:
            acquire(self._mint, MINT_WAIT_SECONDS)
            self._mint_held = True
        if self._link_revoked is None:
            state = self._redis.hget(self._link_key, "state")
            self._link_revoked = state == LINK_REVOKED.encode()
        try:
            return make_token(self._link_revoked)
        finally:
            self._mint_done = True

    def attempt(self, step: str) -> None:
        """``step``, reserved when opened, is being written: its ``pending`` now stands."""
        if step in self._unattempted:
            self._unattempted.remove(step)

    @property
    def mint_lock_held(self) -> bool:
        return self._mint_held

    @property
    def mint_lock_due(self) -> bool:
        """True when the mint is over but its lock has not gone out with a write yet."""
        return self._mint_held and self._mint_done

    def save(
        self,
        fields: dict[str, str],
        clear: tuple[str, ...] = (),
        *,
        finished: bool = False,
    ) -> None:
        """Set ``fields`` and delete ``clear`` in one round trip, with the releases due.

        The mint lock is released once its mint is over; ``finished`` also
        releases the attach lock and clears the reservations never attempted
        (the last write of the attempt: nothing may change the record after
        the lock is gone).
        """
        if finished and self._unattempted:
            clear = (*clear, *(name for name in self._unattempted if name not in fields))
            self._unattempted = []
        releases = []
        if self.mint_lock_due:
            releases.append(self._mint)
        if finished and self._attach_held:
            releases.append(self._attach)
        if not fields and not clear and not releases:
            return
        # Both leases of an attachment are held under the same token.
        args: list[str | int] = [self._attach.token, LEDGER_TTL_SECONDS, len(fields)]
        for name, value in fields.items():
            args += (name, value)
        args += clear
        self._save_script(keys=[self._key, *(lease.name for lease in releases)], args=args)
        for lease in releases:
            self._forget(lease)

    def _forget(self, lease: Lease) -> None:
        leases.drop(lease)
        if lease is self._mint:
            self._mint_held = False
        else:
            self._attach_held = False

    def _release_remaining(self) -> None:
        """When the block ends: release what is still held, clear reservations never
        attempted (a step before them failed), in one round trip if there is any."""
        held = [
            lease
            for lease, is_held in ((self._mint, self._mint_held), (self._attach, self._attach_held))
            if is_held
        ]
        for lease in held:
            leases.drop(lease)
        unattempted, self._unattempted = self._unattempted, []
        if not held and not unattempted:
            return
        # The lease may have lapsed (Redis unreachable for a whole lease), or
        # Redis may be unreachable now: either way it is free within a lease,
        # a reservation left behind costs one read of the ticket, and the job's
        # own outcome matters more than either.
        try:
            self._save_script(
                keys=[self._key, *(lease.name for lease in held)],
                args=[self._attach.token, LEDGER_TTL_SECONDS, 0, *unattempted],
            )
        except redis.RedisError as exc:
            log.warning("could not release %s (they lapse by themselves): %s", held, exc)
        self._mint_held = self._attach_held = False
