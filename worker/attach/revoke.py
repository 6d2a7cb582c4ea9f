"""Revoking a shared link: dead at PostHog, and said so on every ticket that held it.

A link is the session's shared recording, so revoking it for one ticket ends
it for every ticket it was posted on: each gets the note. Each step is
recorded in the link's record (``worker.attach.links``) as it is done, so a
revocation interrupted at any point (a killed process, a vendor outage) is
finished by running it again, and never posts a note twice: a note found
``pending`` is first looked for on the ticket, as for attaching.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from worker.attach import rendering
from worker.attach.helpdesks import helpdesk_of
from worker.attach.ledger import Ledger, StepState
from worker.attach.links import Link
from worker.attach.services import Services
from worker.attach.tickets import Ticket

log = logging.getLogger(__name__)


@dataclass
class Revocation:
    """What one revocation did."""

    session_id: str
    #: The tickets told in this run.
    told: list[str] = field(default_factory=list)
    #: Everything was done before this run.
    already: bool = False
    #: False when PostHog could not rotate the token (a version without ``refresh/``).
    rotated: bool = True


def revoke_link(session_id: str, reason: str, by: str, services: Services) -> Revocation | None:
    """End the session's link and tell each ticket; None when no link is recorded for it.

    Raises ``LockBusy`` while another process revokes or shares the same session
    for longer than ``links.REVOKE_WAIT_SECONDS``, and the integrations' errors
    (the steps done so far are kept): a PostHog still serving the old link after
    the disable is a ``RetryLater``, and the link is not recorded as revoked.
    """
    links = services.links
    with links.revoking(session_id):
        link = links.get(session_id)
        if link is None:
            return None
        result = Revocation(session_id)
        # The record is not trusted for PostHog's side: a link it says is unshared
        # but that PostHog serves again (re-enabled, an older PostHog bringing an old
        # token back) is revoked again.
        if not link.unshared or services.posthog.serves(link.token):
            link = dataclasses.replace(link, unshared=False)
            result.rotated = services.posthog.revoke_sharing(session_id, link.token)
            links.mark_revoked(session_id, time.time(), reason, by)
            links.mark(session_id, "unshared", Ledger.done())
            link = links.get(session_id) or link
        for target, posted in sorted(link.tickets.items()):
            if _tell(link, target, posted, services):
                result.told.append(target)
        result.already = not result.told and result.rotated and link.unshared
        links.forget_later(link)
        return result


def _tell(link: Link, target: str, posted: str, services: Services) -> bool:
    """Leave the revocation's trace on one ticket, once; whether it was written now."""
    trace = f"trace:{target}"
    state = Ledger.state({trace: link.traces.get(target, "")}, trace)
    if state is StepState.DONE:
        return False
    ticket = Ticket.parse(target)
    helpdesk = helpdesk_of(ticket)
    helpdesk.take_link_off(link, ticket, services)
    marker = rendering.revoke_marker(link.token)
    if not (state is StepState.PENDING and helpdesk.shows(ticket, marker, services)):
        services.links.mark(link.session_id, trace, Ledger.pending())
        helpdesk.post_revoked_note(link, ticket, link.revoked_reason or "revoked", services)
    services.links.mark(link.session_id, trace, Ledger.done())
    log.info("told %s that the link of %s was revoked (%s)", target, link.session_id, posted)
    return True
