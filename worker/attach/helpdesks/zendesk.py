"""Zendesk tickets: an internal note (then ``zendesk.tag``), the requester, the failure tag."""

from __future__ import annotations

import logging
from datetime import datetime

from integrations.errors import IntegrationError, NotConfigured
from integrations.zendesk import ZendeskTickets
from worker.attach.events import BugReport
from worker.attach.helpdesks import zendesk_notes
from worker.attach.helpdesks.base import Helpdesk, Step
from worker.attach.links import Link
from worker.attach.rendering import dedupe_marker
from worker.attach.services import Services
from worker.attach.tickets import ZENDESK, Ticket

log = logging.getLogger(__name__)


def _client(services: Services) -> ZendeskTickets:
    if services.zendesk is None:
        raise NotConfigured(
            "Zendesk",
            "Zendesk is not configured: set ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN",
        )
    return services.zendesk


class Zendesk(Helpdesk):
    system = ZENDESK
    door = "/webhooks/zendesk"

    def steps(self, event: BugReport, ticket: Ticket, services: Services) -> list[Step]:
        zendesk, number = _client(services), int(ticket.id)
        public = services.config.zendesk.public_comment
        steps = [
            Step(
                "note",
                lambda replay: zendesk.post_note(
                    number, zendesk_notes.note(event, replay, public=public)
                ),
                lambda replay: zendesk.has_comment_containing(number, dedupe_marker(replay.link)),
            )
        ]
        tag = services.config.zendesk.tag
        if tag:
            steps.append(Step("tag", lambda _: zendesk.add_tags(number, [tag])))
        return steps

    def missing_steps(
        self,
        event: BugReport,
        ticket: Ticket,
        services: Services,
        looked_until: datetime,
        session_page: str,
    ) -> list[Step]:
        zendesk, number = _client(services), int(ticket.id)
        public = services.config.zendesk.public_comment
        note = zendesk_notes.missing_note(event, looked_until, session_page, public=public)
        marker = dedupe_marker(session_page)
        steps = [
            Step(
                "missing_note",
                lambda _: zendesk.post_note(number, note),
                lambda _: zendesk.has_comment_containing(number, marker),
            )
        ]
        tag = services.config.zendesk.missing_tag
        if tag:
            steps.append(Step("missing_tag", lambda _: zendesk.add_tags(number, [tag])))
        return steps

    def requester_email(self, ticket: Ticket, services: Services) -> str | None:
        if services.zendesk is None:
            return None
        return services.zendesk.requester_email(int(ticket.id))

    def shows(self, ticket: Ticket, marker: str, services: Services) -> bool:
        return _client(services).has_comment_containing(int(ticket.id), marker)

    def post_revoked_note(
        self, link: Link, ticket: Ticket, reason: str, services: Services
    ) -> None:
        public = services.config.zendesk.public_comment
        note = zendesk_notes.revoked_note(link, reason, public=public)
        _client(services).post_note(int(ticket.id), note)

    def mark_failed(
        self, ticket: Ticket, services: Services, failure: IntegrationError | None
    ) -> None:
        """``zendesk.failed_tag``, where the ticket can still be updated."""
        tag = services.config.zendesk.failed_tag
        if not tag or services.zendesk is None:
            return
        if failure is not None and failure.system == "Zendesk":
            return  # the ticket itself is the problem (missing, closed, no access)
        try:
            services.zendesk.add_tags(int(ticket.id), [tag])
        except IntegrationError as exc:
            log.warning("could not tag Zendesk ticket %s as failed: %s", ticket, exc.reason)
