"""What a sender is to the intake, and what its door hands on from one delivery.

Each sender (``worker.intake.senders``) is one ``Sender``: its door's path, the
header that names its deliveries, whether its door is on, and how it reads an
authenticated delivery into an ``Accepted``: bug reports or a reason to ignore
the delivery, what identifies a resend of it, and a ticket solved or reopened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from worker.attach.events import BugReport
from worker.config import Config
from worker.intake.bodies import RequestHeaders


@dataclass(frozen=True)
class TicketStatus:
    """A ticket solved (its links end after ``privacy.revoke_after_solved_days``) or reopened."""

    target: str
    solved: bool
    #: When the sender says the change happened (ms, as signed): an older change never
    #: overrides a newer one, so a captured delivery cannot undo what came after it.
    stated_at_ms: int


@dataclass(frozen=True)
class Ignored:
    """A delivery that carries nothing to enqueue: answered 200 so the sender does not resend."""

    reason: str


@dataclass(frozen=True)
class Accepted:
    """What a door read from an authenticated delivery."""

    reports: list[BugReport] | Ignored
    #: What identifies a resend of this delivery (none: nothing does); any one found is a resend.
    identities: tuple[str, ...]
    body: bytes
    #: A ticket solved or reopened, as the delivery tells.
    status: TicketStatus | None = None
    #: The ``token_id`` of the intake token that sent it, if one did: its events count
    #: against that token's rate.
    token: str | None = None


def listed(report: BugReport | Ignored) -> list[BugReport] | Ignored:
    """One webhook's report as the list a door hands on (a reason to ignore it stays one)."""
    return report if isinstance(report, Ignored) else [report]


#: How a door reads one delivery: from the request, its headers, the configuration, and
#: the slots of bodies that arrive in several reads (``bodies.read_body``).
Accept = Callable[[Request, RequestHeaders, Config, asyncio.Semaphore], Awaitable[Accepted]]


@dataclass(frozen=True)
class Sender:
    """One sender of deliveries, as the intake routes to it."""

    #: The door's path (``POST``).
    door: str
    #: The header in which the sender names each delivery (kept with the jobs it enqueues).
    delivery_id_header: str
    #: Whether the door is on: its secret is configured.
    is_on: Callable[[Config], bool]
    #: Reads an authenticated delivery; raises ``Refused`` or ``InvalidEvent`` otherwise.
    accept: Accept
