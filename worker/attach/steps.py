"""The step plan of one job: what it writes to the ticket, in order, and what is safe to repeat.

A Zendesk ticket gets an internal note, then a tag (if ``zendesk.tag`` is set);
a Jira issue gets a remote link and/or a comment (``jira.remote_link``,
``jira.comment``). The plan is made once per job, before the link exists:
each step is given the ``Replay`` (the link and what the note says of it) when
it runs. A session PostHog has no recording of gets another plan
(``plan_missing_steps``): a note (and ``zendesk.missing_tag``) or a comment
saying so, under step names of their own, so that a link posted later for the
same ticket is not taken as already there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from integrations.errors import NotConfigured
from integrations.jira import JiraIssues
from integrations.zendesk import ZendeskTickets
from worker.attach import rendering
from worker.attach.events import BugReport
from worker.attach.rendering import Replay
from worker.attach.services import Services


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
    event = shown_on_ticket(event, services)
    if event.zendesk_ticket is not None:
        return _zendesk_steps(event, event.zendesk_ticket, services)
    assert event.jira_issue is not None
    return _jira_steps(event, event.jira_issue, services)


def plan_missing_steps(event: BugReport, services: Services, looked_until: datetime) -> list[Step]:
    """What a ticket gets when PostHog has no recording of the session: a note saying so."""
    event = shown_on_ticket(event, services)
    posthog = services.config.posthog
    page = rendering.posthog_session_page(posthog.host, posthog.project, event.session_id)
    marker = rendering.dedupe_marker(page)
    if event.zendesk_ticket is not None:
        ticket, zendesk = event.zendesk_ticket, _zendesk(services)
        public = services.config.zendesk.public_comment
        steps = [
            Step(
                "missing_note",
                lambda _: zendesk.post_note(
                    ticket, rendering.zendesk_missing_note(event, looked_until, page, public=public)
                ),
                lambda _: zendesk.has_comment_containing(ticket, marker),
            )
        ]
        tag = services.config.zendesk.missing_tag
        if tag:
            steps.append(Step("missing_tag", lambda _: zendesk.add_tags(ticket, [tag])))
        return steps
    assert event.jira_issue is not None
    issue, jira = event.jira_issue, _jira(services)
    shown_to = _comment_visibility(services)
    return [
        Step(
            "missing_comment",
            lambda _: jira.add_comment(
                issue,
                rendering.jira_missing_comment(
                    event, looked_until, page, api_version=jira.api_version, visibility=shown_to
                ),
            ),
            lambda _: _jira_has_comment_containing(jira, issue, marker),
        )
    ]


def _jira_has_comment_containing(jira: JiraIssues, issue: str, marker: str) -> bool:
    """Whether a comment on ``issue`` holds ``marker`` in any form its format writes it."""
    forms = rendering.jira_markers(marker, api_version=jira.api_version)
    return jira.has_comment_containing(issue, *forms)


def _zendesk(services: Services) -> ZendeskTickets:
    if services.zendesk is None:
        raise NotConfigured(
            "Zendesk",
            "Zendesk is not configured: set ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN",
        )
    return services.zendesk


def _jira(services: Services) -> JiraIssues:
    if services.jira is None:
        raise NotConfigured(
            "Jira",
            "Jira is not configured: set JIRA_URL with JIRA_EMAIL and JIRA_API_TOKEN "
            "(Cloud) or JIRA_PERSONAL_ACCESS_TOKEN (Data Center)",
        )
    return services.jira


def _comment_visibility(services: Services) -> dict[str, str] | None:
    visibility = services.config.jira.comment_visibility
    return visibility.model_dump() if visibility else None


def _zendesk_steps(event: BugReport, ticket: int, services: Services) -> list[Step]:
    zendesk = _zendesk(services)
    public = services.config.zendesk.public_comment
    steps = [
        Step(
            "note",
            lambda replay: zendesk.post_note(
                ticket, rendering.zendesk_note(event, replay, public=public)
            ),
            lambda replay: zendesk.has_comment_containing(
                ticket, rendering.dedupe_marker(replay.link)
            ),
        )
    ]
    tag = services.config.zendesk.tag
    if tag:
        steps.append(Step("tag", lambda _: zendesk.add_tags(ticket, [tag])))
    return steps


def _jira_steps(event: BugReport, issue: str, services: Services) -> list[Step]:
    jira = _jira(services)
    config = services.config
    steps = []
    if config.jira.effective_remote_link:
        project_id = config.posthog.project
        steps.append(
            Step(
                "remote_link",
                lambda replay: jira.upsert_remote_link(
                    issue, rendering.jira_remote_link(event, replay.link, project_id=project_id)
                ),
            )
        )
    if config.jira.comment:
        shown_to = _comment_visibility(services)
        steps.append(
            Step(
                "comment",
                lambda replay: jira.add_comment(
                    issue,
                    rendering.jira_comment(
                        event, replay, api_version=jira.api_version, visibility=shown_to
                    ),
                ),
                lambda replay: _jira_has_comment_containing(
                    jira, issue, rendering.dedupe_marker(replay.link)
                ),
            )
        )
    return steps
