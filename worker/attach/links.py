"""The public links replay-attach has made, kept until each one ends.

A link is the session's shared recording: one token, posted on one or more
tickets. It is recorded here as soon as it is minted, before any ticket shows
it, so that no link can be on a ticket without being known here: revoking
(``worker.attach.revoke``) finds every link by session, by ticket or by age.
A revoked link's record stays ``LINK_RETENTION_SECONDS`` more, so that
``status`` can say when and why.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import redis

from worker import keys
from worker.attach.leases import Lease, exclusive
from worker.lua import lua_script

#: How long a revoked link's record is kept, for ``status``.
LINK_RETENTION_SECONDS = 90 * 24 * 3600
#: How long a revocation waits for a share of the same session in flight to end.
REVOKE_WAIT_SECONDS = 60.0

ACTIVE = "active"
REVOKED = "revoked"

_SHARED = lua_script(__name__, "link_shared.lua")


@dataclass(frozen=True)
class Link:
    """One session's public link, as recorded."""

    session_id: str
    token: str
    shared_at: float
    state: str
    #: Each ticket holding it, and the link as posted there (``?t=`` may differ).
    tickets: dict[str, str] = field(default_factory=dict)
    #: Each ticket's revocation note: ``pending:<time>`` or ``done:<time>``.
    traces: dict[str, str] = field(default_factory=dict)
    unshared: bool = False
    revoked_at: float | None = None
    revoked_reason: str | None = None
    revoked_by: str | None = None

    @property
    def revoked(self) -> bool:
        return self.state == REVOKED


def _link(session_id: str, raw: dict[bytes, bytes]) -> Link | None:
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if "token" not in record:
        return None
    revoked_at = record.get("revoked_at")
    return Link(
        session_id=session_id,
        token=record["token"],
        shared_at=float(record.get("shared_at", 0)),
        state=record.get("state", ACTIVE),
        tickets={k[7:]: v for k, v in record.items() if k.startswith("ticket:")},
        traces={k[6:]: v for k, v in record.items() if k.startswith("trace:")},
        unshared="unshared" in record,
        revoked_at=float(revoked_at) if revoked_at else None,
        revoked_reason=record.get("revoked_reason"),
        revoked_by=record.get("revoked_by"),
    )


class Links:
    """The registry of links, in Redis."""

    def __init__(self, client: redis.Redis, project_id: int) -> None:
        self._redis = client
        self._project_id = project_id
        self._shared = client.register_script(_SHARED)

    @staticmethod
    def key(session_id: str) -> str:
        return keys.LINK_KEY.format(session=session_id)

    def shared(self, session_id: str, token: str, target: str, link: str) -> bool:
        """Record that ``link`` (of ``token``) is about to be posted on ``target``.

        False, recording nothing, when ``token`` is a revoked link's: it must not be posted.
        """
        return bool(
            self._shared(
                keys=[
                    self.key(session_id),
                    keys.LINKS_BY_TIME_KEY,
                    keys.LINKS_OF_TICKET_KEY.format(target=target),
                    keys.LINKS_OF_TICKET_KEY.format(target=""),
                    keys.LINKS_REVOKED_KEY,
                ],
                args=[session_id, token, target, link, f"{time.time():.3f}"],
            )
        )

    def get(self, session_id: str) -> Link | None:
        raw: dict[bytes, bytes] = self._redis.hgetall(self.key(session_id))  # type: ignore[assignment]
        return _link(session_id, raw)

    def is_revoked(self, session_id: str, token: str) -> bool:
        """Whether ``token`` is a revoked link of the session (a re-share needs a new one)."""
        found = self._redis.hmget(self.key(session_id), "token", "state")
        current, state = (v.decode() if v is not None else None for v in found)  # type: ignore[union-attr]
        return current == token and state == REVOKED

    def sessions(
        self,
        *,
        session_id: str | None = None,
        target: str | None = None,
        shared_before: float | None = None,
    ) -> list[str]:
        """The sessions with a recorded link matching the selection, oldest first."""
        if session_id is not None:
            return [session_id] if self._redis.exists(self.key(session_id)) else []
        if target is not None:
            members = self._redis.smembers(keys.LINKS_OF_TICKET_KEY.format(target=target))
            found = sorted(m.decode() for m in members)  # type: ignore[union-attr]
            pipe = self._redis.pipeline(transaction=False)
            for session in found:
                pipe.zscore(keys.LINKS_BY_TIME_KEY, session)
            scores = [score or 0.0 for score in pipe.execute()]
            return [s for _, s in sorted(zip(scores, found, strict=True))]
        upper = "+inf" if shared_before is None else shared_before
        raw = self._redis.zrangebyscore(keys.LINKS_BY_TIME_KEY, "-inf", upper)
        return [m.decode() for m in raw]  # type: ignore[union-attr]

    def forget_solved(self, target: str) -> None:
        """Take the ticket off the solved tickets: its links are revoked, nothing is left due.

        (The intake, on its own connection, adds a solved ticket and removes a reopened one.)
        """
        self._redis.zrem(keys.SOLVED_TICKETS_KEY, target)

    def solved_due(self, now: float) -> list[str]:
        """Solved tickets whose links are due to end."""
        raw = self._redis.zrangebyscore(keys.SOLVED_TICKETS_KEY, "-inf", now)
        return [m.decode() for m in raw]  # type: ignore[union-attr]

    def ends_for_solved(self, target: str) -> float | None:
        """When the solved ticket's links end, if it is solved."""
        score = self._redis.zscore(keys.SOLVED_TICKETS_KEY, target)
        return None if score is None else float(score)

    def mark(self, session_id: str, name: str, value: str) -> None:
        self._redis.hset(self.key(session_id), name, value)

    def mark_revoked(self, session_id: str, at: float, reason: str, by: str) -> None:
        """The link is dead: record when, why and by what (the first revocation's, kept)."""
        pipe = self._redis.pipeline(transaction=True)
        key = self.key(session_id)
        pipe.hset(key, "state", REVOKED)
        pipe.hsetnx(key, "revoked_at", f"{at:.3f}")
        pipe.hsetnx(key, "revoked_reason", reason)
        pipe.hsetnx(key, "revoked_by", by)
        pipe.execute()

    def forget_later(self, link: Link) -> None:
        """A revoked link's record expires after ``LINK_RETENTION_SECONDS``."""
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)
        pipe.expire(self.key(link.session_id), LINK_RETENTION_SECONDS)
        pipe.zrem(keys.LINKS_BY_TIME_KEY, link.session_id)
        pipe.zadd(keys.LINKS_REVOKED_KEY, {link.session_id: link.revoked_at or now})
        pipe.zremrangebyscore(keys.LINKS_REVOKED_KEY, "-inf", now - LINK_RETENTION_SECONDS)
        for target in link.tickets:
            pipe.srem(keys.LINKS_OF_TICKET_KEY.format(target=target), link.session_id)
            revoked = keys.LINKS_REVOKED_OF_TICKET_KEY.format(target=target)
            pipe.sadd(revoked, link.session_id)
            pipe.expire(revoked, LINK_RETENTION_SECONDS)
        pipe.execute()

    def revoked_of(self, target: str) -> list[Link]:
        """The revoked links the ticket held, whose records are still kept."""
        members = self._redis.smembers(keys.LINKS_REVOKED_OF_TICKET_KEY.format(target=target))
        found = [self.get(m.decode()) for m in sorted(members)]  # type: ignore[union-attr]
        return [link for link in found if link is not None and link.revoked]

    def revoking(self, session_id: str) -> contextlib.AbstractContextManager[Lease]:
        """The session's mint lock, for a revocation; raises ``LockBusy``.

        The same lock as minting's (``worker.attach.ledger``): a share landing between
        PostHog's disable and the record's "revoked" would leave a live token on a
        ticket beside a "revoked" note, never swept. It also keeps revocations of one
        session apart. A share in flight ends within seconds: the revocation waits.
        """
        name = keys.MINT_LOCK_KEY.format(project=self._project_id, session=session_id)
        return exclusive(self._redis, name, wait_seconds=REVOKE_WAIT_SECONDS)
