"""A fake Zendesk Support API: tickets, comments (public replies and internal notes) and tags.

Keeps the traps that bite integrations: a comment is public unless `"public": false` is sent,
`tags` in a ticket update replaces every tag, closed tickets refuse updates, and there is no
idempotency for updates.
"""

from __future__ import annotations

import copy
import html
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from html.parser import HTMLParser
from typing import Any

from sandbox.doubles.base import Double, Request, Response, basic_auth, json_response

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
AGENT_ID = 1
REQUESTER_ID = 2

_TICKET = r"/api/v2/tickets/(?P<id>\d+)"
# A comment as it appears among an audit's events.
_EVENT_FIELDS = (
    "id",
    "type",
    "author_id",
    "body",
    "html_body",
    "plain_body",
    "public",
    "attachments",
)


def _stamp(moment: datetime) -> str:
    # Zendesk timestamps have second precision.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _err(status: int, error: str, description: str, **extra: Any) -> Response:
    return json_response(status, {"error": error, "description": description, **extra})


def _closed_error() -> Response:
    return _err(
        422,
        "RecordInvalid",
        "Record validation errors",
        details={"status": [{"description": "Status: closed prevents ticket update"}]},
    )


class _TextExtractor(HTMLParser):
    """html_body -> body, the way Zendesk derives a comment's plain text."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    _HIDDEN = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self._HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BREAKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:  # Zendesk drops scripts and styles from the plain body
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)


def text_to_html(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    inner = "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    # Real Zendesk also wraps this in <div class="zd-comment">; plain paragraphs are enough here.
    return inner


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


class ZendeskDouble(Double):
    # What a Zendesk API answer carries besides its body (values typical, not copied).
    EDGE_HEADERS = (
        ("Cache-Control", "no-cache"),
        ("Vary", "Accept-Encoding, Origin"),
        ("X-Zendesk-API-Version", "v2"),
        ("X-Zendesk-Application-Version", "v20548"),
        ("X-Zendesk-Origin-Server", "app-server-7f9c8b6d5-x2k4q"),
        ("X-Zendesk-Processed-Host-Header", "sandbox.zendesk.com"),
        ("X-Rate-Limit", "700"),
        ("X-Rate-Limit-Remaining", "699"),
        ("X-Request-Id", "8f1d2c3b4a596877-FRA"),
        ("X-Runtime", "0.081462"),
        ("X-Frame-Options", "SAMEORIGIN"),
        ("X-Content-Type-Options", "nosniff"),
        ("Strict-Transport-Security", "max-age=31536000;"),
        (
            "Set-Cookie",
            "__cfruid=5c0a9f1e2d3b4c5a6978-1732620000; path=/; domain=.sandbox.zendesk.com; "
            "HttpOnly; Secure; SameSite=None",
        ),
        ("CF-Cache-Status", "DYNAMIC"),
        ("CF-RAY", "8f1d2c3b4a596877-FRA"),
    )

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
        self._state = threading.RLock()
        self._next_comment_id = 9001
        self._next_audit_id = 50001
        self._next_ticket_id = 1000

        self.route("GET", r"/api/v2/users/me\.json", self._me)
        self.route("POST", r"/api/v2/tickets\.json", self._create_ticket)
        self.route("GET", _TICKET + r"\.json", self._get_ticket)
        self.route("PUT", _TICKET + r"\.json", self._update_ticket)
        self.route("GET", _TICKET + r"/comments\.json", self._list_comments)
        self.route("GET", _TICKET + r"/tags\.json", self._tags)
        self.route("PUT", _TICKET + r"/tags\.json", self._tags)
        self.route("POST", _TICKET + r"/tags\.json", self._tags)
        self.route("DELETE", _TICKET + r"/tags\.json", self._tags)

    # ----------------------------------------------------------------- test helpers

    def add_ticket(
        self,
        ticket_id: int,
        subject: str = "Sandbox ticket",
        status: str = "open",
        tags: list[str] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Create (or replace) a ticket; its description becomes public comment 1."""
        text = description or f"{subject}\n\nSent from the sandbox help centre."
        return self._insert_ticket(
            ticket_id, subject, status, tags or [], {"body": text, "public": True}, REQUESTER_ID
        )

    def _insert_ticket(
        self,
        ticket_id: int,
        subject: str,
        status: str,
        tags: list[str],
        first_comment: dict[str, Any],
        author_id: int,
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
                "requester_id": REQUESTER_ID,
                "submitter_id": author_id,
                "assignee_id": AGENT_ID,
                "via_followup_source_id": None,
                "created_at": _stamp(now),
                "updated_at": _stamp(now),
                "comments": [comment],
            }
            self.tickets[ticket_id] = ticket
            self._next_ticket_id = max(self._next_ticket_id, ticket_id + 1)
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
        return _err(404, "InvalidEndpoint", "Not found")

    def throttled_response(self) -> Response:
        if self.retry_after_http_date:
            # RFC 7231 allows a date; clients that int() the header break on it.
            at = datetime.now(timezone.utc) + timedelta(seconds=self.retry_after_seconds + 1)
            retry_after = format_datetime(at, usegmt=True)
        else:
            retry_after = str(self.retry_after_seconds)
        return json_response(
            429,
            {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
            {"Retry-After": retry_after},
        )

    def unavailable_response(self) -> Response:
        return json_response(503, {"error": "ServiceUnavailable"})

    def internal_error_response(self) -> Response:
        return _err(500, "InternalServerError", "Something went wrong")

    # ----------------------------------------------------------------- routes

    def _authenticated(self, request: Request) -> bool:
        return basic_auth(request.headers) == (f"{self.email}/token", self.api_token)

    def _unauthorized(self) -> Response:
        return json_response(401, {"error": "Couldn't authenticate you"})

    def _find(self, ticket_id: int) -> dict[str, Any] | None:
        """Caller holds the state lock."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None and self.auto_create_tickets and ticket_id > 0:
            ticket = self.add_ticket(ticket_id, subject=f"Load-test ticket {ticket_id}")
        return ticket

    def _me(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
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
            return self._unauthorized()
        with self._state:
            ticket = self._find(int(request.params["id"]))
            if ticket is None:
                return _err(404, "RecordNotFound", "Not found")
            return json_response(200, {"ticket": self._ticket_json(ticket)})

    def _create_ticket(self, request: Request) -> Response:
        """POST /tickets.json: Zendesk's remedy for a closed ticket is a follow-up ticket."""
        if not self._authenticated(request):
            return self._unauthorized()
        payload = self._ticket_payload(request)
        if isinstance(payload, Response):
            return payload
        comment = payload.get("comment")
        if not isinstance(comment, dict) or not (comment.get("body") or comment.get("html_body")):
            return _err(
                422,
                "RecordInvalid",
                "Record validation errors",
                details={"description": [{"description": "Description: cannot be blank"}]},
            )
        status = payload.get("status") or "new"
        if status not in STATUSES:
            return _err(400, "InvalidValue", f"Status: {status} invalid")
        tags = normalize_tags(payload.get("tags", []))
        if tags is None:
            return _err(400, "InvalidValue", "tags must be a list of strings")
        with self._state:
            ticket = self._insert_ticket(
                self._next_ticket_id,
                str(payload.get("subject") or "Follow-up"),
                status,
                tags,
                comment,
                AGENT_ID,
            )
            ticket["via_followup_source_id"] = payload.get("via_followup_source_id")
            return json_response(
                201,
                {
                    "ticket": self._ticket_json(ticket),
                    "audit": self._audit(ticket, ticket["comments"], []),
                },
            )

    def _update_ticket(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
        payload = self._ticket_payload(request)
        if isinstance(payload, Response):
            return payload
        with self._state:
            ticket = self._find(int(request.params["id"]))
            if ticket is None:
                return _err(404, "RecordNotFound", "Not found")
            if ticket["status"] == "closed":
                return _closed_error()
            if payload.get("safe_update") and payload.get("updated_stamp") != ticket["updated_at"]:
                return _err(
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
                    return _err(
                        422,
                        "RecordInvalid",
                        "Record validation errors",
                        details={"base": [{"description": "Comment: cannot be blank"}]},
                    )
                comment = raw
            if "status" in payload and payload["status"] not in STATUSES:
                return _err(
                    422,
                    "RecordInvalid",
                    "Record validation errors",
                    details={"status": [{"description": f"Status: {payload['status']} invalid"}]},
                )
            tags = ticket["tags"]
            for key, merge in (("tags", "set"), ("additional_tags", "add"), ("remove_tags", "rm")):
                if key in payload:
                    given = normalize_tags(payload[key])
                    if given is None:
                        return _err(400, "InvalidValue", f"{key} must be a list of strings")
                    tags = self._merge_tags(tags, given, merge)
            if tags != ticket["tags"]:
                changes.append(self._change("tags", tags, ticket["tags"]))
                ticket["tags"] = tags
            for field in ("status", "subject", "priority", "type"):
                if field in payload and payload[field] != ticket[field]:
                    changes.append(self._change(field, payload[field], ticket[field]))
                    ticket[field] = payload[field]
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
                    "ticket": self._ticket_json(ticket),
                    "audit": self._audit(ticket, events, changes),
                },
            )

    def _list_comments(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
        try:
            page = max(1, int(request.query.get("page", "1")))
            per_page = min(100, max(1, int(request.query.get("per_page", "100"))))
        except ValueError:
            return _err(400, "InvalidPaginationParameter", "page and per_page must be integers")
        ticket_id = int(request.params["id"])
        with self._state:
            ticket = self._find(ticket_id)
            if ticket is None:
                return _err(404, "RecordNotFound", "Not found")
            comments = copy.deepcopy(ticket["comments"])
        if request.query.get("sort_order") == "desc":
            comments.reverse()
        start = (page - 1) * per_page
        base = f"{self.url}/api/v2/tickets/{ticket_id}/comments.json"
        return json_response(
            200,
            {
                "comments": comments[start : start + per_page],
                "next_page": (
                    f"{base}?page={page + 1}&per_page={per_page}"
                    if start + per_page < len(comments)
                    else None
                ),
                "previous_page": (
                    f"{base}?page={page - 1}&per_page={per_page}" if page > 1 else None
                ),
                "count": len(comments),
            },
        )

    def _tags(self, request: Request) -> Response:
        """GET lists, PUT adds, POST replaces, DELETE removes: Zendesk's tags endpoint."""
        if not self._authenticated(request):
            return self._unauthorized()
        with self._state:
            ticket = self._find(int(request.params["id"]))
            if ticket is None:
                return _err(404, "RecordNotFound", "Not found")
            if request.method == "GET":
                return json_response(200, {"tags": list(ticket["tags"])})
            if ticket["status"] == "closed":
                return _closed_error()
            body = request.json if isinstance(request.json, dict) else None
            given = normalize_tags(body.get("tags")) if body else None
            if given is None:
                return _err(400, "InvalidValue", "tags must be a list of strings")
            mode = {"PUT": "add", "POST": "set", "DELETE": "rm"}[request.method]
            tags = self._merge_tags(ticket["tags"], given, mode)
            if tags != ticket["tags"]:
                ticket["tags"] = tags
                self._touch(ticket)
            return json_response(200, {"tags": list(tags)})

    # ----------------------------------------------------------------- internals

    def _ticket_payload(self, request: Request) -> dict[str, Any] | Response:
        if request.json_error is not None:
            return _err(400, "InvalidJSON", f"Malformed JSON: {request.json_error}")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
            return _err(400, "InvalidJSON", "Expected a JSON object with a 'ticket' object")
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
        ticket["updated_at"] = _stamp(now)
        return now

    def _make_comment(self, raw: dict[str, Any], author_id: int, now: datetime) -> dict[str, Any]:
        """Caller holds the state lock."""
        html_body = raw.get("html_body")
        if html_body:
            body = html_to_text(str(html_body))
        else:
            body = str(raw.get("body", ""))
            html_body = text_to_html(body)
        public = raw.get("public", True)  # the trap: omitted means a PUBLIC reply
        if isinstance(public, str):
            public = public.lower() != "false"
        comment_id = self._next_comment_id
        self._next_comment_id += 1
        return {
            "id": comment_id,
            "type": "Comment",
            "author_id": author_id,
            "body": body,
            "html_body": str(html_body),
            "plain_body": body,
            "public": bool(public),
            "attachments": [],
            "created_at": _stamp(now),
        }

    def _audit(
        self, ticket: dict[str, Any], comments: list[dict[str, Any]], changes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        audit_id = self._next_audit_id
        self._next_audit_id += 1
        events = [{k: c[k] for k in _EVENT_FIELDS} for c in comments]
        return {
            "id": audit_id,
            "ticket_id": ticket["id"],
            "created_at": ticket["updated_at"],
            "author_id": AGENT_ID,
            "events": events + changes,
        }

    @staticmethod
    def _change(field: str, value: Any, previous: Any) -> dict[str, Any]:
        return {"type": "Change", "field_name": field, "value": value, "previous_value": previous}

    def _ticket_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        data = {k: copy.deepcopy(v) for k, v in ticket.items() if k != "comments"}
        data["url"] = f"{self.url}/api/v2/tickets/{ticket['id']}.json"
        return data
