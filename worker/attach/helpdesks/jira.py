"""Jira issues: a remote link and/or a comment (``jira.remote_link``, ``jira.comment``), the
reporter, and a revoked link taken off the issue's links."""

from __future__ import annotations

from datetime import datetime

from integrations.errors import NotConfigured
from integrations.jira import JiraIssues
from worker.attach.events import BugReport
from worker.attach.helpdesks import jira_comments
from worker.attach.helpdesks.base import Helpdesk, Step
from worker.attach.links import Link
from worker.attach.rendering import dedupe_marker
from worker.attach.services import Services
from worker.attach.tickets import JIRA, Ticket


def _client(services: Services) -> JiraIssues:
    if services.jira is None:
        raise NotConfigured(
            "Jira",
            "Jira is not configured: set JIRA_URL with JIRA_EMAIL and JIRA_API_TOKEN "
            "(Cloud) or JIRA_PERSONAL_ACCESS_TOKEN (Data Center)",
        )
    return services.jira


def _shown_to(services: Services) -> dict[str, str] | None:
    visibility = services.config.jira.comment_visibility
    return visibility.model_dump() if visibility else None


def _has_comment_containing(jira: JiraIssues, issue: str, marker: str) -> bool:
    """Whether a comment on ``issue`` holds ``marker`` in any form its format writes it."""
    return jira.has_comment_containing(
        issue, *jira_comments.markers(marker, api_version=jira.api_version)
    )


class Jira(Helpdesk):
    system = JIRA
    door = "/webhooks/jira"

    def steps(self, event: BugReport, ticket: Ticket, services: Services) -> list[Step]:
        jira, config = _client(services), services.config
        steps = []
        if config.jira.effective_remote_link:
            project_id = config.posthog.project
            steps.append(
                Step(
                    "remote_link",
                    lambda replay: jira.upsert_remote_link(
                        ticket.id,
                        jira_comments.remote_link(event, replay.link, project_id=project_id),
                    ),
                )
            )
        if config.jira.comment:
            shown_to = _shown_to(services)
            steps.append(
                Step(
                    "comment",
                    lambda replay: jira.add_comment(
                        ticket.id,
                        jira_comments.comment(
                            event, replay, api_version=jira.api_version, visibility=shown_to
                        ),
                    ),
                    lambda replay: _has_comment_containing(
                        jira, ticket.id, dedupe_marker(replay.link)
                    ),
                )
            )
        return steps

    def missing_steps(
        self,
        event: BugReport,
        ticket: Ticket,
        services: Services,
        looked_until: datetime,
        session_page: str,
    ) -> list[Step]:
        jira, shown_to = _client(services), _shown_to(services)
        marker = dedupe_marker(session_page)
        return [
            Step(
                "missing_comment",
                lambda _: jira.add_comment(
                    ticket.id,
                    jira_comments.missing_comment(
                        event,
                        looked_until,
                        session_page,
                        api_version=jira.api_version,
                        visibility=shown_to,
                    ),
                ),
                lambda _: _has_comment_containing(jira, ticket.id, marker),
            )
        ]

    def requester_email(self, ticket: Ticket, services: Services) -> str | None:
        if services.jira is None:
            return None
        return services.jira.reporter_email(ticket.id)

    def shows(self, ticket: Ticket, marker: str, services: Services) -> bool:
        return _has_comment_containing(_client(services), ticket.id, marker)

    def post_revoked_note(
        self, link: Link, ticket: Ticket, reason: str, services: Services
    ) -> None:
        jira = _client(services)
        comment = jira_comments.revoked_comment(
            link, reason, api_version=jira.api_version, visibility=_shown_to(services)
        )
        jira.add_comment(ticket.id, comment)

    def take_link_off(self, link: Link, ticket: Ticket, services: Services) -> None:
        project_id = services.config.posthog.project
        _client(services).remove_remote_link(
            ticket.id, jira_comments.remote_link_id(project_id, link.session_id)
        )
