"""``POST /webhooks/jira``: a Jira admin webhook, or Jira Automation's "Send web request".

Signed (``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``), or sent with
the secret as a bearer token (Automation signs nothing). Only the body is signed, and
it carries Jira's timestamp: a delivery is known by its body. The body is the issue
created, or updated with the session field or the resolution changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request

from worker.attach.events import JIRA_ISSUE_PATTERN, BugReport, InvalidEvent
from worker.attach.tickets import Ticket
from worker.config import Config
from worker.intake.bodies import (
    MAX_BATCH_BYTES,
    RequestHeaders,
    parse_json,
    read_body,
    require_json,
)
from worker.intake.deliveries import body_digest
from worker.intake.refusals import DOOR_OFF, unauthorized
from worker.intake.sender import Accepted, Ignored, Sender, TicketStatus, listed
from worker.intake.senders.templates import json_object, with_session
from worker.intake.tokens import same_secret, token_problem

DOOR = "/webhooks/jira"
SIGNATURE = "x-hub-signature"
#: Jira's id of one delivery (not signed: it names the delivery in logs, never a resend).
WEBHOOK_IDENTIFIER = "x-atlassian-webhook-identifier"

# ----------------------------------------------------------------- its signature


def jira_signature_problem(
    secret: SecretStr, body: bytes, headers: Mapping[str, str]
) -> str | None:
    """Jira admin webhooks: ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``.

    Why the delivery is not Jira's, for the server's log only (None: it is).
    """
    algorithm, _, given = headers.get(SIGNATURE, "").partition("=")
    if algorithm.strip().lower() != "sha256" or not given:
        return "an X-Hub-Signature header that is not sha256=<hex>"
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    if not same_secret(given.strip().lower(), digest):
        return "a signature that does not match the body and the secret"
    return None


# ----------------------------------------------------------------- its body


def _field_value(value: Any) -> Any:
    """A Jira field's value as text: select lists and similar carry it in ``value``."""
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else value


def _changed(data: Mapping[str, Any], field: str) -> bool:
    changelog = data.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    return isinstance(items, list) and any(
        isinstance(item, Mapping) and field in (item.get("fieldId"), item.get("field"))
        for item in items
    )


def _resolution(payload: Mapping[str, Any], issue: Mapping[str, Any]) -> TicketStatus | None:
    """An update that sets the resolution solves the issue; one that clears it reopens it."""
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and "resolution" in (item.get("fieldId"), item.get("field")):
            key = issue.get("key")
            name = key.strip().upper() if isinstance(key, str) else ""
            if not re.match(JIRA_ISSUE_PATTERN, name):
                raise InvalidEvent("issue.key: must be a Jira issue key such as BUG-42")
            return TicketStatus(
                str(Ticket.jira(name)),
                bool(item.get("to") or item.get("toString")),
                _jira_timestamp(payload.get("timestamp")),
            )
    return None


def _jira_timestamp(value: Any) -> int:
    # The only time Jira signs (it is in the body): it orders solving and reopening.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
        raise InvalidEvent(
            "timestamp: must be the webhook's time in milliseconds (it orders a resolution "
            "change against the issue's others)"
        )
    return value


def read_jira(
    data: Any, session_field: str, posthog_host: str
) -> tuple[BugReport | Ignored, TicketStatus | None]:
    """A Jira webhook: ``jira:issue_created``, or ``jira:issue_updated`` setting the session field
    (or the resolution, which solves or reopens the issue).

    Jira Automation's "Send web request" with "Issue data (Jira format)" sends the
    same ``issue`` without ``webhookEvent``, and "Issue data (Automation format)"
    the bare issue (``self``, ``id``, ``key``, ``fields``): both count as a creation.
    """
    payload = json_object(data, "the body")
    if "issue" not in payload and "key" in payload and "fields" in payload:
        # Automation's "Issue data (Automation format)": the bare issue, a creation.
        payload = {"issue": payload}
    kind = payload.get("webhookEvent", "jira:issue_created")
    if kind not in ("jira:issue_created", "jira:issue_updated"):
        return Ignored(f"{kind} is not an issue creation or update"), None
    issue = json_object(payload.get("issue"), "issue")
    fields = json_object(issue.get("fields") or {}, "issue.fields")
    state = _resolution(payload, issue) if kind == "jira:issue_updated" else None
    if kind == "jira:issue_updated" and not _changed(payload, session_field):
        return Ignored(f"the update did not change {session_field}"), state
    return _jira_report(issue, fields, session_field, posthog_host), state


def _jira_report(
    issue: Mapping[str, Any], fields: Mapping[str, Any], session_field: str, posthog_host: str
) -> BugReport | Ignored:
    session = _field_value(fields.get(session_field))
    if not session:
        return Ignored(f"the issue has no session id in {session_field}")
    if not isinstance(session, str):
        raise InvalidEvent(f"issue.fields.{session_field}: must be text (a session id)")
    if not issue.get("key"):
        raise InvalidEvent("issue.key: is required")
    return with_session({"session_id": session, "jira_issue": issue["key"]}, posthog_host)


# ----------------------------------------------------------------- its door


def is_on(config: Config) -> bool:
    return config.intake.jira_webhook_secret is not None


async def accept(
    request: Request, headers: RequestHeaders, config: Config, slots: asyncio.Semaphore
) -> Accepted:
    intake = config.intake
    secret, field = intake.jira_webhook_secret, intake.jira_session_field
    if secret is None or field is None:
        raise DOOR_OFF
    body = await read_body(request, headers, MAX_BATCH_BYTES, slots)
    signed = SIGNATURE in headers
    problem = (
        jira_signature_problem(secret, body, headers)
        if signed
        else token_problem(headers.get("authorization"), [secret])
    )
    if problem is not None:
        raise unauthorized(problem)
    require_json(headers)
    report, status = read_jira(parse_json(body), field, config.posthog.host)
    # Only the body is signed (X-Atlassian-Webhook-Identifier is not, and there is no
    # signed timestamp): a delivery is known by its body, which carries Jira's timestamp.
    return Accepted(listed(report), (body_digest(body),), body, status)


SENDER = Sender(DOOR, WEBHOOK_IDENTIFIER, is_on, accept)
