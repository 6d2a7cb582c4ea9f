"""The step plan of one job: what it writes to the ticket, in order, and what is safe to repeat.

Each helpdesk plans its own steps (``worker.attach.helpdesks``): a Zendesk ticket gets an
internal note, then a tag (if ``zendesk.tag`` is set); a Jira issue gets a remote link
and/or a comment (``jira.remote_link``, ``jira.comment``). The plan is made once per job,
before the link exists: each step is given the ``Replay`` (the link and what the note says
of it) when it runs. A session PostHog has no recording of gets another plan
(``plan_missing_steps``): a note (and ``zendesk.missing_tag``) or a comment saying so, under
step names of their own, so that a link posted later for the same ticket is not taken as
already there.
"""

from __future__ import annotations

from datetime import datetime

from worker.attach import rendering
from worker.attach.events import BugReport
from worker.attach.helpdesks import Step, helpdesk_of
from worker.attach.services import Services


def shown_on_ticket(event: BugReport, services: Services) -> BugReport:
    """The event as tickets show it: without the reporter's words or page when told so."""
    notes = services.config.notes
    hidden = {
        name: None
        for name, shown in (
            ("description", notes.include_description),
            ("page_url", notes.include_page_url),
        )
        if not shown
    }
    return event.model_copy(update=hidden) if hidden else event


def plan_steps(event: BugReport, services: Services) -> list[Step]:
    """The steps of this event's job; raises ``NotConfigured`` for a disabled system."""
    ticket = event.ticket
    return helpdesk_of(ticket).steps(shown_on_ticket(event, services), ticket, services)


def plan_missing_steps(event: BugReport, services: Services, looked_until: datetime) -> list[Step]:
    """What a ticket gets when PostHog has no recording of the session: a note saying so."""
    posthog = services.config.posthog
    page = rendering.posthog_session_page(posthog.host, posthog.project, event.session_id)
    ticket, shown = event.ticket, shown_on_ticket(event, services)
    return helpdesk_of(ticket).missing_steps(shown, ticket, services, looked_until, page)


__all__ = ["Step", "plan_missing_steps", "plan_steps", "shown_on_ticket"]
