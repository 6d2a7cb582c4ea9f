"""The step plan of one job: what it writes to the ticket, in order, and what is safe to repeat.

A Zendesk ticket gets an internal note, then a tag (if ``zendesk.tag`` is set);
a Jira issue gets a remote link and/or a comment (``jira.remote_link``,
``jira.comment``). The plan is made once per job, before the link exists:
each step is given the link when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from integrations.errors import NotConfigured
from worker.attach import rendering
from worker.attach.events import BugReport
from worker.attach.services import Services


@dataclass(frozen=True)
class Step:
    name: str
    #: Writes this step to the ticket, given the embed link.
    write: Callable[[str], None]
    #: For a write not safe to repeat (a note, a comment): whether the ticket
    #: already shows it, given the embed link. None for steps safe to repeat.
    already_there: Callable[[str], bool] | None = None

    @property
    def repeatable(self) -> bool:
        return self.already_there is None


def plan_steps(event: BugReport, services: Services) -> list[Step]:
    """The steps of this event's job; raises ``NotConfigured`` for a disabled system."""
    if event.zendesk_ticket is not None:
        return _zendesk_steps(event, event.zendesk_ticket, services)
    assert event.jira_issue is not None
    return _jira_steps(event, event.jira_issue, services)


def _zendesk_steps(event: BugReport, ticket: int, services: Services) -> list[Step]:
    zendesk = services.zendesk
    if zendesk is None:
        raise NotConfigured(
            "Zendesk",
            "Zendesk is not configured: set ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN",
        )
    public = services.config.zendesk.public_comment
    steps = [
        Step(
            "note",
            lambda link: zendesk.post_note(
                ticket, rendering.zendesk_note(event, link, public=public)
            ),
            lambda link: zendesk.has_comment_containing(ticket, rendering.dedupe_marker(link)),
        )
    ]
    tag = services.config.zendesk.tag
    if tag:
        steps.append(Step("tag", lambda link: zendesk.add_tags(ticket, [tag])))
    return steps


def _jira_steps(event: BugReport, issue: str, services: Services) -> list[Step]:
    jira = services.jira
    if jira is None:
        raise NotConfigured(
            "Jira",
            "Jira is not configured: set JIRA_URL with JIRA_EMAIL and JIRA_API_TOKEN "
            "(Cloud) or JIRA_PERSONAL_ACCESS_TOKEN (Data Center)",
        )
    config = services.config
    steps = []
    if config.jira.remote_link:
        project_id = config.posthog.project_id
        steps.append(
            Step(
                "remote_link",
                lambda link: jira.upsert_remote_link(
                    issue, rendering.jira_remote_link(event, link, project_id=project_id)
                ),
            )
        )
    if config.jira.comment:
        visibility = config.jira.comment_visibility
        shown_to = visibility.model_dump() if visibility else None
        steps.append(
            Step(
                "comment",
                lambda link: jira.add_comment(
                    issue,
                    rendering.jira_comment(
                        event, link, api_version=jira.api_version, visibility=shown_to
                    ),
                ),
                lambda link: jira.has_comment_containing(issue, rendering.dedupe_marker(link)),
            )
        )
    return steps
