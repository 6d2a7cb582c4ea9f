"""What a Zendesk trigger's webhook sends: the rendered JSON body and the signed headers.

The sandbox's stand-in for an admin's setup: a webhook (with its signing secret) pointed at the
intake server, and triggers "ticket created and session field present" and "status changed to
solved or closed" that notify it with the body

    {"ticket_id": "{{ticket.id}}", "session_id": "{{ticket.ticket_field_<id>}}",
     "status": "{{ticket.status}}"}

Placeholders render as text, so every value is a string, and `{{ticket.status}}` renders the
status's display name ("Open", "Solved"), not the API's lower-case value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.doubles.zendesk_answers import stamp

#: The id of the ticket field "Session id" that the admin maps into the trigger's body.
SESSION_FIELD_ID = 36000000042
#: The webhook's id (a ULID, as Zendesk's are), sent in every delivery.
WEBHOOK_ID = "01JSANDBOX0REPLAYATTACH001"
#: The secret Zendesk signs the webhook builder's test sends with, whatever the webhook's own.
TEST_SIGNING_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="  # noqa: S105 (public)
#: Statuses whose arrival the second trigger reports.
DONE_STATUSES = ("solved", "closed")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """X-Zendesk-Webhook-Signature: base64(HMAC-SHA256(secret, timestamp + body)).

    The secret's text is the key as it is (not base64-decoded), and nothing separates the
    timestamp from the body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def session_id_of(ticket: dict[str, Any], field_id: int) -> str | None:
    """The ticket's value of custom field `field_id`; None when unset or blank."""
    for field in ticket.get("custom_fields", []):
        if field["id"] == field_id and field["value"] not in (None, ""):
            return str(field["value"])
    return None


@dataclass(frozen=True)
class TriggerWebhook:
    """The webhook an admin created in Zendesk, and the field its triggers put in the body."""

    url: str
    secret: str
    session_field_id: int = SESSION_FIELD_ID
    webhook_id: str = WEBHOOK_ID

    def body(self, ticket: dict[str, Any], session_id: str) -> bytes:
        rendered = {
            "ticket_id": str(ticket["id"]),
            "session_id": session_id,
            "status": str(ticket["status"]).capitalize(),
        }
        return json.dumps(rendered).encode()

    def headers(self, body: bytes, invocation_id: str, now: datetime) -> dict[str, str]:
        timestamp = stamp(now)
        return {
            "Content-Type": "application/json",
            "User-Agent": "Zendesk Webhook",
            "X-Zendesk-Webhook-Id": self.webhook_id,
            "X-Zendesk-Webhook-Invocation-Id": invocation_id,
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "X-Zendesk-Webhook-Signature": signature(self.secret, timestamp, body),
        }
