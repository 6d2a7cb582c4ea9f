"""A fake Zendesk Support API: tickets, comments (public replies and internal notes) and tags.

Keeps the traps that bite integrations: a comment is public unless `"public": false` is sent,
`tags` in a ticket update replaces every tag, closed tickets refuse updates, and there is no
idempotency for updates.

Once `send_webhooks` is called, it also fires a trigger's signed webhooks, as an admin's triggers
would: when a ticket is created with its session field filled in, and when a ticket with one is
solved or closed.

This module holds the ticket store, the test helpers and the webhook firing; the routes are in
zendesk_routes.py, the rules of a ticket's fields (statuses, tags, custom fields) in
zendesk_tickets.py, answers and errors in Zendesk's style in zendesk_answers.py, comment bodies in
zendesk_comments.py, webhook bodies and signatures in zendesk_webhooks.py.
"""

from __future__ import annotations

import copy
import itertools
import threading
from datetime import datetime, timezone
from typing import Any, ClassVar

from sandbox.doubles import zendesk_answers as answers
from sandbox.doubles.auth import basic_auth
from sandbox.doubles.base import Double
from sandbox.doubles.messages import Request, Response
from sandbox.doubles.posthog_recordings import CUSTOMER_EMAIL
from sandbox.doubles.webhooks import WebhookSender
from sandbox.doubles.zendesk_answers import AGENT_ID
from sandbox.doubles.zendesk_comments import make_comment
from sandbox.doubles.zendesk_routes import TicketRoutes
from sandbox.doubles.zendesk_tickets import REQUESTER_ID, STATUSES, normalize_tags
from sandbox.doubles.zendesk_webhooks import SESSION_FIELD_ID, TriggerWebhook, session_id_of

_TICKET = r"/api/v2/tickets/(?P<id>\d+)"


class ZendeskDouble(TicketRoutes, Double):
    EDGE_HEADERS = answers.EDGE_HEADERS
    #: The ticket field "Session id" an admin maps into the trigger's body (the default).
    SESSION_FIELD_ID: ClassVar[int] = SESSION_FIELD_ID

    def __init__(
        self,
        email: str = "agent@sandbox.test",
        api_token: str = "zd_sandbox_token",  # noqa: S107 (a fake server's fake credential)
        auto_create_tickets: bool = False,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.email = email
        self.api_token = api_token
        self.auto_create_tickets = auto_create_tickets
        self.retry_after_seconds = 1
        self.retry_after_http_date = False
        self.tickets: dict[int, dict[str, Any]] = {}
        #: Users by id: the agent, the sandbox's customer (every ticket's requester unless
        #: told otherwise) and the requesters tickets were created for.
        self.users: dict[int, dict[str, Any]] = {
            AGENT_ID: {"id": AGENT_ID, "email": email, "name": "Sandbox Agent", "role": "agent"},
            REQUESTER_ID: {
                "id": REQUESTER_ID,
                "email": CUSTOMER_EMAIL,
                "name": "Sandbox Customer",
                "role": "end-user",
            },
        }
        self._state = threading.RLock()
        self._next_comment_id = 9001
        self._next_audit_id = 50001
        self._next_ticket_id = 1000
        #: The trigger's webhook, once `send_webhooks` is called; None fires nothing.
        self.webhook: TriggerWebhook | None = None
        #: Deliveries of that webhook, with every attempt recorded.
        self.webhooks = WebhookSender(name="ZendeskDouble webhooks")
        self._invocation_ids = itertools.count(8350205001)

        self.route("GET", r"/api/v2/users/me\.json", self._me)
        self.route("GET", r"/api/v2/users/(?P<id>\d+)\.json", self._get_user)
        self.route("POST", r"/api/v2/tickets\.json", self._create_ticket)
        self.route("GET", _TICKET + r"\.json", self._get_ticket)
        self.route("PUT", _TICKET + r"\.json", self._update_ticket)
        self.route("GET", _TICKET + r"/comments\.json", self._list_comments)
        self.route("GET", _TICKET + r"/tags\.json", self._tags)
        self.route("PUT", _TICKET + r"/tags\.json", self._tags)
        self.route("POST", _TICKET + r"/tags\.json", self._tags)
        self.route("DELETE", _TICKET + r"/tags\.json", self._tags)

    def stop(self) -> None:
        super().stop()
        self.webhooks.stop()

    # ----------------------------------------------------------------- test helpers

    def send_webhooks(
        self, url: str, secret: str, session_field_id: int = SESSION_FIELD_ID
    ) -> None:
        """From now on, POST a signed webhook to `url` when a ticket is created with custom
        field `session_field_id` filled in, and when such a ticket is solved or closed."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must be http:// or https://, not {url!r}")
        self.webhook = TriggerWebhook(url, secret, session_field_id)

    def add_ticket(
        self,
        ticket_id: int,
        subject: str = "Sandbox ticket",
        status: str = "open",
        tags: list[str] | None = None,
        description: str | None = None,
        custom_fields: dict[int, str] | None = None,
        requester_email: str | None = CUSTOMER_EMAIL,
    ) -> dict[str, Any]:
        """Create (or replace) a ticket; its description becomes public comment 1.

        `custom_fields` maps field ids to values; the session field fires the webhook. The
        requester is the end user with `requester_email` (None: a user without an email)."""
        text = description or f"{subject}\n\nSent from the sandbox help centre."
        fields = [{"id": k, "value": v} for k, v in (custom_fields or {}).items()]
        with self._state:
            requester = self._end_user(requester_email)
            return self._insert_ticket(
                ticket_id,
                subject,
                status,
                tags or [],
                {"body": text, "public": True},
                requester,
                fields,
                requester_id=requester,
            )

    def _end_user(self, email: str | None) -> int:
        """The id of the end user with `email`, created if new. Caller holds the state lock."""
        for user in self.users.values():
            if email is not None and user["email"] == email:
                return int(user["id"])
        user_id = max(self.users) + 1
        name = email.partition("@")[0] if email else f"Visitor {user_id}"
        self.users[user_id] = {"id": user_id, "email": email, "name": name, "role": "end-user"}
        return user_id

    def _insert_ticket(
        self,
        ticket_id: int,
        subject: str,
        status: str,
        tags: list[str],
        first_comment: dict[str, Any],
        author_id: int,
        custom_fields: list[dict[str, Any]] | None = None,
        requester_id: int = REQUESTER_ID,
    ) -> dict[str, Any]:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._state:
            now = datetime.now(timezone.utc)
            comment = self._make_comment(first_comment, author_id, now)
            ticket: dict[str, Any] = {
                "id": ticket_id,
                "subject": subject,
                "description": comment["body"],
                "status": status,
                "priority": None,
                "type": None,
                "tags": normalize_tags(tags) or [],
                "requester_id": requester_id,
                "submitter_id": author_id,
                "assignee_id": AGENT_ID,
                "via_followup_source_id": None,
                "custom_fields": list(custom_fields or []),
                "created_at": answers.stamp(now),
                "updated_at": answers.stamp(now),
                "comments": [comment],
            }
            self.tickets[ticket_id] = ticket
            self._next_ticket_id = max(self._next_ticket_id, ticket_id + 1)
            self._fire_webhook(ticket)  # the trigger "ticket created and session field present"
            return ticket

    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        """A deep copy of a ticket (with its comments), safe to inspect while serving."""
        with self._state:
            ticket = self.tickets.get(ticket_id)
            return copy.deepcopy(ticket) if ticket else None

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        found = self.ticket(ticket_id)
        return found["comments"] if found else []

    def snapshot(self) -> dict[str, Any]:
        with self._state:
            return {"tickets": [copy.deepcopy(t) for _, t in sorted(self.tickets.items())]}

    # ----------------------------------------------------------------- vendor style

    def not_found_response(self, request: Request) -> Response:
        return answers.not_found()

    def throttled_response(self) -> Response:
        return answers.throttled(self.retry_after_seconds, self.retry_after_http_date)

    def unavailable_response(self) -> Response:
        return answers.unavailable()

    def internal_error_response(self) -> Response:
        return answers.internal_error()

    # ----------------------------------------------------------------- auth & lookup

    def _authenticated(self, request: Request) -> bool:
        return basic_auth(request.headers) == (f"{self.email}/token", self.api_token)

    def _find(self, ticket_id: int) -> dict[str, Any] | None:
        """Caller holds the state lock."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None and self.auto_create_tickets and ticket_id > 0:
            ticket = self.add_ticket(ticket_id, subject=f"Load-test ticket {ticket_id}")
        return ticket

    # ----------------------------------------------------------------- internals

    def _fire_webhook(self, ticket: dict[str, Any]) -> None:
        """Queue the trigger's webhook for `ticket`, if set up and the session field is filled
        in. Caller holds the state lock; the delivery itself happens on the sender's thread."""
        webhook = self.webhook
        if webhook is None:
            return
        session_id = session_id_of(ticket, webhook.session_field_id)
        if session_id is None:
            return
        body = webhook.body(ticket, session_id)
        # One invocation id per delivery, kept by its retries: the receiver's dedupe key.
        invocation_id = str(next(self._invocation_ids))
        headers = webhook.headers(body, invocation_id, datetime.now(timezone.utc))
        self.webhooks.post(webhook.url, body, headers)

    def _make_comment(self, raw: dict[str, Any], author_id: int, now: datetime) -> dict[str, Any]:
        """Caller holds the state lock."""
        comment_id = self._next_comment_id
        self._next_comment_id += 1
        return make_comment(raw, comment_id, author_id, now)

    def _audit(
        self, ticket: dict[str, Any], comments: list[dict[str, Any]], changes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        audit_id = self._next_audit_id
        self._next_audit_id += 1
        return answers.audit_json(audit_id, ticket, comments, changes)
