"""A ticket: a Zendesk ticket or a Jira issue, and its one written form, ``zendesk:123``
or ``jira:BUG-42``.

That form names the ticket in Redis keys, in the links' records, in logs and in the
metrics' ``system`` label, so it is built and read here only.
"""

from __future__ import annotations

from dataclasses import dataclass

ZENDESK = "zendesk"
JIRA = "jira"


@dataclass(frozen=True)
class Ticket:
    """One ticket: its system (``zendesk`` or ``jira``) and its id in that system."""

    system: str
    #: The Zendesk ticket number, or the Jira issue key (upper case, as Jira shows it).
    id: str

    @classmethod
    def zendesk(cls, number: int) -> Ticket:
        return cls(ZENDESK, str(number))

    @classmethod
    def jira(cls, key: str) -> Ticket:
        # Jira keys are case-insensitive; they are named as Jira shows them.
        return cls(JIRA, key.upper())

    @classmethod
    def parse(cls, text: str) -> Ticket:
        """The ticket ``text`` names (``zendesk:123``): what comes before the first ``:`` is
        its system, the rest its id; either may be empty when ``text`` is not such a name."""
        system, _, ticket_id = text.partition(":")
        return cls(system, ticket_id)

    def __str__(self) -> str:
        return f"{self.system}:{self.id}"

    @property
    def label(self) -> str:
        """The ticket as a support engineer would name it."""
        if self.system == ZENDESK:
            return f"Zendesk ticket {self.id}"
        return f"Jira issue {self.id}"
