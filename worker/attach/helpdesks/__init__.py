"""The helpdesks links land in, each a plug (``base.Helpdesk``) the use case calls by name.

Adding a helpdesk means one module here (its plug, and one for its format), a client in
``integrations/``, a sender at the intake and a double in ``sandbox/doubles/``
(docs/architecture.md lists them); the use case does not change.
"""

from __future__ import annotations

from worker.attach.helpdesks.base import Helpdesk, Step
from worker.attach.helpdesks.jira import Jira
from worker.attach.helpdesks.zendesk import Zendesk

#: Every helpdesk, by the system name its targets start with.
HELPDESKS: dict[str, Helpdesk] = {desk.system: desk for desk in (Zendesk(), Jira())}


def helpdesk_of(target: str) -> tuple[Helpdesk, str]:
    """The helpdesk of ``target`` (``zendesk:123``) and the ticket's id in it (``123``)."""
    system, _, ticket = target.partition(":")
    try:
        return HELPDESKS[system], ticket
    except KeyError:
        raise ValueError(f"no helpdesk is called {system!r} (target {target!r})") from None


__all__ = ["HELPDESKS", "Helpdesk", "Step", "helpdesk_of"]
