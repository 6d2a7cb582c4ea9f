"""Tickets solved and reopened, applied in the order their senders say they happened.

A solving starts the countdown to the end of a ticket's links; a reopening stops
it. Deliveries can arrive out of order (a sender's retry) or again (a captured
delivery sent later), so each change carries the time its sender signed, and a
change older than the last one applied to the same ticket changes nothing. The
comparison and the change are one Lua script: two server processes cannot both
pass the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from worker import keys
from worker.intake.sender import TicketStatus
from worker.lua import lua_script

_APPLY_SCRIPT = lua_script(__name__, "ticket_state_apply.lua")

_APPLIED, _SUPERSEDED, _TOO_OLD = 1, 0, 2


@dataclass(frozen=True)
class Applied:
    """What became of one change."""

    applied: bool
    #: Why it was not: a later change came first, or it is older than the ordering window.
    reason: str = ""


class TicketStates:
    """Records solved and reopened tickets for the worker fleet's link sweep."""

    def __init__(self, client: aioredis.Redis, window_seconds: int) -> None:
        self._script = client.register_script(_APPLY_SCRIPT)
        self._window = window_seconds

    async def apply(self, status: TicketStatus, links_end_at: float) -> Applied:
        """Apply ``status`` unless a later change of its ticket came first.

        A change older than the window is not applied: its ticket's last change may
        have been forgotten by then, so its order cannot be known.
        """
        oldest_ms = int((time.time() - self._window) * 1000)
        outcome = await self._script(
            keys=[keys.TICKET_STATE_AT_KEY.format(target=status.target), keys.SOLVED_TICKETS_KEY],
            args=[
                status.stated_at_ms,
                oldest_ms,
                self._window,
                int(status.solved),
                links_end_at,
                status.target,
            ],
        )
        if outcome == _SUPERSEDED:
            return Applied(False, "a later change of the ticket was applied before")
        if outcome == _TOO_OLD:
            return Applied(False, "the change is older than intake.deduplicate_hours")
        return Applied(True)
