"""The ticket routes of the Zendesk double: the signed-in agent, users, tickets (create, read,
update), a ticket's comments and its tags. `ZendeskDouble` (zendesk.py) mixes `TicketRoutes` in and
registers the routes; the tickets themselves, and the webhooks they fire, are kept there.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from sandbox.doubles import zendesk_answers as answers
from sandbox.doubles.messages import Request, Response, json_response
from sandbox.doubles.zendesk_answers import AGENT_ID, error, invalid_record, record_not_found
from sandbox.doubles.zendesk_tickets import (
    REQUESTER_ID,
    STATUSES,
    custom_field_list,
    merge_tags,
    normalize_tags,
    touch,
)
from sandbox.doubles.zendesk_webhooks import DONE_STATUSES


class _Host(Protocol):
    """What the routes use of `ZendeskDouble`."""

    email: str
    users: dict[int, dict[str, Any]]
    _next_ticket_id: int

    @property
    def url(self) -> str: ...

    @property
    def _state(self) -> AbstractContextManager[Any]: ...

    def _authenticated(self, request: Request) -> bool: ...

    def _find(self, ticket_id: int) -> dict[str, Any] | None: ...

    def _end_user(self, email: str | None) -> int: ...

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
    ) -> dict[str, Any]: ...

    def _fire_webhook(self, ticket: dict[str, Any]) -> None: ...

    def _make_comment(
        self, raw: dict[str, Any], author_id: int, now: datetime
    ) -> dict[str, Any]: ...

    def _audit(
        self, ticket: dict[str, Any], comments: list[dict[str, Any]], changes: list[dict[str, Any]]
    ) -> dict[str, Any]: ...


class TicketRoutes:
    """The handlers of `/api/v2/users/...` and `/api/v2/tickets/...`; each that reads or changes
    tickets or users takes the state lock."""

    def _me(self: _Host, request: Request) -> Response:
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

    def _get_ticket(self: _Host, request: Request) -> Response:
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

    def _get_user(self: _Host, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        with self._state:
            user = self.users.get(int(request.params["id"]))
            if user is None:
                return record_not_found()
            return json_response(200, {"user": copy.deepcopy(user)})

    def _create_ticket(self: _Host, request: Request) -> Response:
        """POST /tickets.json: Zendesk's remedy for a closed ticket is a follow-up ticket."""
        if not self._authenticated(request):
            return answers.unauthorized()
        payload = ticket_payload(request)
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

    def _update_ticket(self: _Host, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        payload = ticket_payload(request)
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
                    tags = merge_tags(tags, given, merge)
            if tags != ticket["tags"]:
                changes.append(answers.change("tags", tags, ticket["tags"]))
                ticket["tags"] = tags
            for field in ("status", "subject", "priority", "type"):
                if field in payload and payload[field] != ticket[field]:
                    changes.append(answers.change(field, payload[field], ticket[field]))
                    ticket[field] = payload[field]
                    if field == "status" and ticket["status"] in DONE_STATUSES:
                        self._fire_webhook(ticket)  # the trigger "status changed to solved..."
            now = touch(ticket)
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

    def _list_comments(self: _Host, request: Request) -> Response:
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

    def _tags(self: _Host, request: Request) -> Response:
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
            tags = merge_tags(ticket["tags"], given, mode)
            if tags != ticket["tags"]:
                ticket["tags"] = tags
                touch(ticket)
            return json_response(200, {"tags": list(tags)})


def ticket_payload(request: Request) -> dict[str, Any] | Response:
    """The request's `ticket` object, or Zendesk's 400 for a body that holds none."""
    if request.json_error is not None:
        return error(400, "InvalidJSON", f"Malformed JSON: {request.json_error}")
    body = request.json
    if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
        return error(400, "InvalidJSON", "Expected a JSON object with a 'ticket' object")
    ticket: dict[str, Any] = body["ticket"]
    return ticket
