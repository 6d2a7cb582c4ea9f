"""What a helpdesk is to the attach use case: the plug every helpdesk fills in.

A helpdesk is where links land (a Zendesk ticket, a Jira issue). The use case asks it for
the steps of a job, for the steps of a "no recording" answer, for the requester of a
ticket, for the trace a revocation leaves, and what a failed job leaves on a ticket; it
never names a helpdesk itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from integrations.errors import IntegrationError
from worker.attach.events import BugReport
from worker.attach.links import Link
from worker.attach.rendering import Replay
from worker.attach.services import Services
from worker.attach.tickets import Ticket


@dataclass(frozen=True)
class Step:
    name: str
    #: Writes this step to the ticket.
    write: Callable[[Replay], None]
    #: For a write not safe to repeat (a note, a comment): whether the ticket
    #: already shows it. None for steps safe to repeat.
    already_there: Callable[[Replay], bool] | None = None

    @property
    def repeatable(self) -> bool:
        return self.already_there is None


class Helpdesk(ABC):
    """One helpdesk's side of attaching, finding the requester and revoking.

    Every method that calls the helpdesk raises ``NotConfigured`` when its credentials are
    not set.
    """

    #: The system its tickets name (``Ticket.system``), as Redis keys, logs and metrics do.
    system: ClassVar[str]
    #: The intake door its webhooks come through (the requester rule knows it by that).
    door: ClassVar[str]

    @abstractmethod
    def steps(self, event: BugReport, ticket: Ticket, services: Services) -> list[Step]:
        """What a job writes on the ticket, in order (the note or comment first)."""

    @abstractmethod
    def missing_steps(
        self,
        event: BugReport,
        ticket: Ticket,
        services: Services,
        looked_until: datetime,
        session_page: str,
    ) -> list[Step]:
        """What the ticket gets when PostHog has no recording of the session."""

    @abstractmethod
    def requester_email(self, ticket: Ticket, services: Services) -> str | None:
        """The email of the ticket's requester (or reporter), as the helpdesk shows it."""

    @abstractmethod
    def shows(self, ticket: Ticket, marker: str, services: Services) -> bool:
        """Whether a note or comment on the ticket holds ``marker`` (in any form its format
        writes it): how a write whose answer was lost is found before writing again."""

    @abstractmethod
    def post_revoked_note(
        self, link: Link, ticket: Ticket, reason: str, services: Services
    ) -> None:
        """Say on the ticket that its link was revoked, and why."""

    def take_link_off(self, link: Link, ticket: Ticket, services: Services) -> None:
        """Remove the revoked link where the helpdesk shows it apart from notes (nothing,
        unless it does)."""
        return None

    def mark_failed(
        self, ticket: Ticket, services: Services, failure: IntegrationError | None
    ) -> None:
        """Let agents see on the ticket that its job failed (``failure``: the error that
        failed it, if a vendor's). Nothing, unless the helpdesk has a way."""
        return None
