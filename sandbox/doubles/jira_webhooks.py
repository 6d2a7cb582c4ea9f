"""What a Jira admin webhook sends: issue events and the signed headers.

The sandbox's stand-in for an admin's setup: a webhook with a secret, pointed at the intake
server, for "issue created" and "issue updated", with the JQL filter `"Session id" is not EMPTY`,
so only issues that carry a session id are reported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

#: The custom field holding the PostHog session id (its id differs on every Jira site).
SESSION_FIELD = "customfield_10042"
#: That field's name, as changelog items show it.
SESSION_FIELD_NAME = "Session id"


def signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature: "sha256=" + hex HMAC-SHA256(secret, body); no timestamp is signed."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class AdminWebhook:
    """The webhook an admin registered in Jira, and the field that holds the session id."""

    url: str
    secret: str
    session_field: str = SESSION_FIELD

    def issue_created(
        self, issue: dict[str, Any], user: dict[str, Any], timestamp_ms: int
    ) -> bytes:
        """`issue` and `user` as the REST API renders them (jira_answers)."""
        return _encode(
            {
                "timestamp": timestamp_ms,
                "webhookEvent": "jira:issue_created",
                "issue_event_type_name": "issue_created",
                "user": user,
                "issue": issue,
            }
        )

    def session_field_changed(
        self,
        issue: dict[str, Any],
        user: dict[str, Any],
        timestamp_ms: int,
        changelog_id: str,
        previous: str | None,
        value: str,
    ) -> bytes:
        # A text field's change carries its text in fromString/toString; from/to stay null.
        item = {
            "field": SESSION_FIELD_NAME,
            "fieldtype": "custom",
            "fieldId": self.session_field,
            "from": None,
            "fromString": previous,
            "to": None,
            "toString": value,
        }
        return _encode(
            {
                "timestamp": timestamp_ms,
                "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": "issue_updated",
                "user": user,
                "issue": issue,
                "changelog": {"id": changelog_id, "items": [item]},
            }
        )

    def headers(self, body: bytes, identifier: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "Atlassian Webhook HTTP Client",
            "X-Atlassian-Webhook-Identifier": identifier,
            "X-Hub-Signature": signature(self.secret, body),
        }
