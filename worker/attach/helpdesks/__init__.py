"""The helpdesks links land in, each a plug (``base.Helpdesk``) the use case calls by name.

Adding a helpdesk means one module here (its plug, and one for its format), a client in
``integrations/``, a sender at the intake and a double in ``sandbox/doubles/``
(docs/architecture.md lists them); the use case does not change.
"""

from __future__ import annotations

from worker.attach.helpdesks.base import Helpdesk, Step
from worker.attach.helpdesks.jira import Jira
from worker.attach.helpdesks.zendesk import Zendesk
from worker.attach.tickets import Ticket

#: Every helpdesk, by the system its tickets name (``Ticket.system``).
HELPDESKS: dict[str, Helpdesk] = {desk.system: desk for desk in (Zendesk(), Jira())}


def helpdesk_of(ticket: Ticket) -> Helpdesk:
    """The helpdesk ``ticket`` is in; ``ValueError`` when none is called by its system."""
    try:
        return HELPDESKS[ticket.system]
    except KeyError:
        raise ValueError(f"no helpdesk is called {ticket.system!r} (ticket {ticket})") from None


__all__ = ["HELPDESKS", "Helpdesk", "Step", "helpdesk_of"]
