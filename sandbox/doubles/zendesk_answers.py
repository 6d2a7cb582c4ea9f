"""Zendesk's answers, body and headers: its error shape and wording, timestamps, and the JSON it
renders for tickets and audits. Pure functions of the stored data."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from sandbox.doubles.messages import Response, json_response

AGENT_ID = 1

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


def stamp(moment: datetime) -> str:
    # Zendesk timestamps have second precision.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, error: str, description: str, **extra: Any) -> Response:
    return json_response(status, {"error": error, "description": description, **extra})


def invalid_record(field: str, description: str) -> Response:
    """Zendesk's 422 for a record that fails validation on `field`."""
    return error(
        422,
        "RecordInvalid",
        "Record validation errors",
        details={field: [{"description": description}]},
    )


def closed_error() -> Response:
    return invalid_record("status", "Status: closed prevents ticket update")


def record_not_found() -> Response:
    return error(404, "RecordNotFound", "Not found")


def unauthorized() -> Response:
    return json_response(401, {"error": "Couldn't authenticate you"})


def not_found() -> Response:
    return error(404, "InvalidEndpoint", "Not found")


def throttled(retry_after_seconds: int, as_http_date: bool) -> Response:
    if as_http_date:
        # RFC 7231 allows a date; clients that int() the header break on it.
        at = datetime.now(timezone.utc) + timedelta(seconds=retry_after_seconds + 1)
        retry_after = format_datetime(at, usegmt=True)
    else:
        retry_after = str(retry_after_seconds)
    return json_response(
        429,
        {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
        {"Retry-After": retry_after},
    )


def unavailable() -> Response:
    return json_response(503, {"error": "ServiceUnavailable"})


def internal_error() -> Response:
    return error(500, "InternalServerError", "Something went wrong")


def ticket_json(base_url: str, ticket: dict[str, Any]) -> dict[str, Any]:
    data = {k: copy.deepcopy(v) for k, v in ticket.items() if k != "comments"}
    data["url"] = f"{base_url}/api/v2/tickets/{ticket['id']}.json"
    return data


def audit_json(
    audit_id: int,
    ticket: dict[str, Any],
    comments: list[dict[str, Any]],
    changes: list[dict[str, Any]],
) -> dict[str, Any]:
    events = [{k: c[k] for k in _EVENT_FIELDS} for c in comments]
    return {
        "id": audit_id,
        "ticket_id": ticket["id"],
        "created_at": ticket["updated_at"],
        "author_id": AGENT_ID,
        "events": events + changes,
    }


def change(field: str, value: Any, previous: Any) -> dict[str, Any]:
    return {"type": "Change", "field_name": field, "value": value, "previous_value": previous}


def comments_page(
    base_url: str, ticket_id: int, comments: list[dict[str, Any]], page: int, per_page: int
) -> dict[str, Any]:
    start = (page - 1) * per_page
    base = f"{base_url}/api/v2/tickets/{ticket_id}/comments.json"
    return {
        "comments": comments[start : start + per_page],
        "next_page": (
            f"{base}?page={page + 1}&per_page={per_page}"
            if start + per_page < len(comments)
            else None
        ),
        "previous_page": (f"{base}?page={page - 1}&per_page={per_page}" if page > 1 else None),
        "count": len(comments),
    }
