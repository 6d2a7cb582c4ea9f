"""A fake Zendesk Support API: tickets, comments (public replies and internal notes) and tags.

Keeps the traps that bite integrations: a comment is public unless `"public": false` is sent,
`tags` in a ticket update replaces every tag, closed tickets refuse updates, and there is no
idempotency for updates.

Once `send_webhooks` is called, it also fires a trigger's signed webhooks, as an admin's triggers
would: when a ticket is created with its session field filled in, and when a ticket with one is
solved or closed.

This module holds the ticket store and the routes; answers and errors in Zendesk's style are in
zendesk_answers.py, comment bodies in zendesk_comments.py, webhook bodies and signatures in
zendesk_webhooks.py.
"""

from __future__ import annotations

import copy
import itertools
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from sandbox.doubles import zendesk_answers as answers
from sandbox.doubles.auth import basic_auth
from sandbox.doubles.base import Double
from sandbox.doubles.messages import Request, Response, json_response
from sandbox.doubles.posthog_recordings import CUSTOMER_EMAIL
from sandbox.doubles.webhooks import WebhookSender
from sandbox.doubles.zendesk_answers import AGENT_ID, error, invalid_record, record_not_found
from sandbox.doubles.zendesk_comments import make_comment
from sandbox.doubles.zendesk_webhooks import (
    DONE_STATUSES,
    SESSION_FIELD_ID,
    TriggerWebhook,
    session_id_of,
)

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
REQUESTER_ID = 2

_TICKET = r"/api/v2/tickets/(?P<id>\d+)"


def normalize_tags(tags: Any) -> list[str] | None:
    """Zendesk tags are lower-case and cannot contain spaces ("a b" becomes two tags)."""
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None
    out: list[str] = []
    for tag in tags:
        for part in tag.lower().split():
            if part not in out:
                out.append(part)
    return out


def custom_field_list(fields: Any) -> list[dict[str, Any]] | None:
    """A request's `custom_fields` ([{"id": N, "value": ...}]) as stored; None if malformed.

    Values are kept as text, as a text field stores them; a null value stays null."""
    if not isinstance(fields, list):
        return None
    out: list[dict[str, Any]] = []
    for field in fields:
        if not isinstance(field, dict) or not isinstance(field.get("id"), int):
            return None
        value = field.get("value")
        out.append({"id": field["id"], "value": None if value is None else str(value)})
    return out


class ZendeskDouble(Double):
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

    # ----------------------------------------------------------------- routes

    def _authenticated(self, request: Request) -> bool:
        return basic_auth(request.headers) == (f"{self.email}/token", self.api_token)

    def _find(self, ticket_id: int) -> dict[str, Any] | None:
        """Caller holds the state lock."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None and self.auto_create_tickets and ticket_id > 0:
            ticket = self.add_ticket(ticket_id, subject=f"Load-test ticket {ticket_id}")
        return ticket

    def _me(self, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        return json_response(
            200,
            {
                "user": {
                    "id": AGENT_ID,
                    "email": self.email,
                    "role": "agent",
                    "name": "Sandbox Agent",
                    "active": True,
                }
            },
        )

    def _get_ticket(self, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        with self._state:
            ticket = self._find(int(request.params["id"]))
            if ticket is None:
                return record_not_found()
            body: dict[str, Any] = {"ticket": answers.ticket_json(self.url, ticket)}
            # Sideloading: `?include=users` adds the ticket's requester, submitter and assignee.
            if "users" in request.query.get("include", "").split(","):
                ids = {ticket["requester_id"], ticket["submitter_id"], ticket["assignee_id"]}
                body["users"] = [
                    copy.deepcopy(self.users[i]) for i in sorted(ids) if i in self.users
                ]
            return json_response(200, body)

    def _get_user(self, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        with self._state:
            user = self.users.get(int(request.params["id"]))
            if user is None:
                return record_not_found()
            return json_response(200, {"user": copy.deepcopy(user)})

    def _create_ticket(self, request: Request) -> Response:
        """POST /tickets.json: Zendesk's remedy for a closed ticket is a follow-up ticket."""
        if not self._authenticated(request):
            return answers.unauthorized()
        payload = self._ticket_payload(request)
        if isinstance(payload, Response):
            return payload
        comment = payload.get("comment")
        if not isinstance(comment, dict) or not (comment.get("body") or comment.get("html_body")):
            return invalid_record("description", "Description: cannot be blank")
        status = payload.get("status") or "new"
        if status not in STATUSES:
            return error(400, "InvalidValue", f"Status: {status} invalid")
        tags = normalize_tags(payload.get("tags", []))
        if tags is None:
            return error(400, "InvalidValue", "tags must be a list of strings")
        fields = custom_field_list(payload.get("custom_fields", []))
        if fields is None:
            return error(400, "InvalidValue", 'custom_fields must be a list of {"id", "value"}')
        requester = payload.get("requester")
        email = requester.get("email") if isinstance(requester, dict) else None
        if requester is not None and not isinstance(email, str):
            return invalid_record("requester", "Requester: must have an email address")
        with self._state:
            ticket = self._insert_ticket(
                self._next_ticket_id,
                str(payload.get("subject") or "Follow-up"),
                status,
                tags,
                comment,
                AGENT_ID,
                fields,
                # A form's ticket is its end user's; without one, the sandbox's customer's.
                requester_id=self._end_user(email) if email else REQUESTER_ID,
            )
            ticket["via_followup_source_id"] = payload.get("via_followup_source_id")
            return json_response(
                201,
                {
                    "ticket": answers.ticket_json(self.url, ticket),
                    "audit": self._audit(ticket, ticket["comments"], []),
                },
            )

    def _update_ticket(self, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        payload = self._ticket_payload(request)
        if isinstance(payload, Response):
            return payload
        with self._state:
            ticket = self._find(int(request.params["id"]))
            if ticket is None:
                return record_not_found()
            if ticket["status"] == "closed":
                return answers.closed_error()
            if payload.get("safe_update") and payload.get("updated_stamp") != ticket["updated_at"]:
                return error(
                    409,
                    "UpdateConflict",
                    "Safe Update prevented the update due to outdated ticket data. "
                    "Please fetch the latest ticket data and try again.",
                )
            changes: list[dict[str, Any]] = []
            comment: dict[str, Any] | None = None
            if "comment" in payload:
                raw = payload["comment"]
                if not isinstance(raw, dict) or not (raw.get("body") or raw.get("html_body")):
                    return invalid_record("base", "Comment: cannot be blank")
                comment = raw
            if "status" in payload and payload["status"] not in STATUSES:
                return invalid_record("status", f"Status: {payload['status']} invalid")
            tags = ticket["tags"]
            for key, merge in (("tags", "set"), ("additional_tags", "add"), ("remove_tags", "rm")):
                if key in payload:
                    given = normalize_tags(payload[key])
                    if given is None:
                        return error(400, "InvalidValue", f"{key} must be a list of strings")
                    tags = self._merge_tags(tags, given, merge)
            if tags != ticket["tags"]:
                changes.append(answers.change("tags", tags, ticket["tags"]))
                ticket["tags"] = tags
            for field in ("status", "subject", "priority", "type"):
                if field in payload and payload[field] != ticket[field]:
                    changes.append(answers.change(field, payload[field], ticket[field]))
                    ticket[field] = payload[field]
                    if field == "status" and ticket["status"] in DONE_STATUSES:
                        self._fire_webhook(ticket)  # the trigger "status changed to solved..."
            now = self._touch(ticket)
            events: list[dict[str, Any]] = []
            if comment is not None:
                author = comment.get("author_id")
                made = self._make_comment(comment, int(author) if author else AGENT_ID, now)
                ticket["comments"].append(made)
                events.append(made)
            return json_response(
                200,
                {
                    "ticket": answers.ticket_json(self.url, ticket),
                    "audit": self._audit(ticket, events, changes),
                },
            )

    def _list_comments(self, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        try:
            page = max(1, int(request.query.get("page", "1")))
            per_page = min(100, max(1, int(request.query.get("per_page", "100"))))
        except ValueError:
            return error(400, "InvalidPaginationParameter", "page and per_page must be integers")
        ticket_id = int(request.params["id"])
        with self._state:
            ticket = self._find(ticket_id)
            if ticket is None:
                return record_not_found()
            comments = copy.deepcopy(ticket["comments"])
        if request.query.get("sort_order") == "desc":
            comments.reverse()
        return json_response(
            200, answers.comments_page(self.url, ticket_id, comments, page, per_page)
        )

    def _tags(self, request: Request) -> Response:
        """GET lists, PUT adds, POST replaces, DELETE removes: Zendesk's tags endpoint."""
        if not self._authenticated(request):
            return answers.unauthorized()
        with self._state:
            ticket = self._find(int(request.params["id"]))
            if ticket is None:
                return record_not_found()
            if request.method == "GET":
                return json_response(200, {"tags": list(ticket["tags"])})
            if ticket["status"] == "closed":
                return answers.closed_error()
            body = request.json if isinstance(request.json, dict) else None
            given = normalize_tags(body.get("tags")) if body else None
            if given is None:
                return error(400, "InvalidValue", "tags must be a list of strings")
            mode = {"PUT": "add", "POST": "set", "DELETE": "rm"}[request.method]
            tags = self._merge_tags(ticket["tags"], given, mode)
            if tags != ticket["tags"]:
                ticket["tags"] = tags
                self._touch(ticket)
            return json_response(200, {"tags": list(tags)})

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

    def _ticket_payload(self, request: Request) -> dict[str, Any] | Response:
        if request.json_error is not None:
            return error(400, "InvalidJSON", f"Malformed JSON: {request.json_error}")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
            return error(400, "InvalidJSON", "Expected a JSON object with a 'ticket' object")
        ticket: dict[str, Any] = body["ticket"]
        return ticket

    @staticmethod
    def _merge_tags(current: list[str], given: list[str], mode: str) -> list[str]:
        if mode == "set":
            return list(given)
        if mode == "add":
            return current + [t for t in given if t not in current]
        return [t for t in current if t not in given]

    @staticmethod
    def _touch(ticket: dict[str, Any]) -> datetime:
        # updated_at must change on every update, even within one second, or a stale
        # `updated_stamp` could pass the safe_update check.
        now = datetime.now(timezone.utc).replace(microsecond=0)
        previous = datetime.strptime(ticket["updated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc
        )
        now = max(now, previous + timedelta(seconds=1))
        ticket["updated_at"] = answers.stamp(now)
        return now

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
