"""The OpenAPI description of the intake, served at ``GET /openapi.json``.

The event's schema comes from the event contract itself (pydantic), so the
description cannot drift from what the doors accept.
"""

from __future__ import annotations

import functools
from typing import Any

from worker.attach.events import BugReport

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_ENQUEUED = {
    "type": "object",
    "properties": {"job_ids": {"type": "array", "items": {"type": "string"}}},
    "required": ["job_ids"],
}
_IGNORED = {
    "type": "object",
    "properties": {"ignored": {"type": "string", "description": "Why nothing was enqueued."}},
    "required": ["ignored"],
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _later(why: str) -> dict[str, Any]:
    return {
        "description": why + " Send again after Retry-After seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": _ERROR}},
    }


def _answers(*extra: tuple[str, str]) -> dict[str, Any]:
    answers = {
        "202": _json(_ENQUEUED, "Enqueued (a resent delivery gets the first one's job ids)."),
        "200": _json(_IGNORED, "Nothing to enqueue, with the reason; do not send again."),
        "400": _json(_ERROR, "Invalid JSON or event; the message names the field."),
        "401": _json(_ERROR, "Missing or invalid credentials, signature or timestamp."),
        "404": _json(_ERROR, "This door is off: its secret is not configured."),
        "408": _json(_ERROR, "The request did not arrive whole within the read deadline."),
        "413": _json(_ERROR, "The body is too large."),
        "415": _json(_ERROR, "The body is not sent as application/json."),
        "429": _later("This token sent more events per minute than it may."),
        "503": _later(
            "The queue is unavailable or full, or too many bodies are being read at once."
        ),
    }
    for status, description in extra:
        answers[status] = _json(_ERROR, description)
    return answers


def _webhook(summary: str, description: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": description,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": _answers(),
        }
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    event = BugReport.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "replay-attach intake",
            "version": "1",
            "description": "Bug reports whose PostHog session replay should appear on a "
            "Zendesk ticket or a Jira issue. A 2xx answer means the report is queued.",
        },
        "components": {
            "schemas": {"BugReport": event},
            "securitySchemes": {"intakeToken": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/bug-reports": {
                "post": {
                    "summary": "Enqueue one bug report, or a list of up to 1,000 (all or none)",
                    "security": [{"intakeToken": []}],
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "A resent request with the same key gets the same "
                            "job ids and enqueues nothing (for at least 24 hours).",
                            "schema": {"type": "string", "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/BugReport"},
                                        {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 1000,
                                            "items": {"$ref": "#/components/schemas/BugReport"},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": _answers(
                        ("422", "This Idempotency-Key was already used for another body.")
                    ),
                }
            },
            "/webhooks/zendesk": _webhook(
                "A Zendesk trigger's webhook",
                "Signed with X-Zendesk-Webhook-Signature and its timestamp. Body: "
                '{"ticket_id": "{{ticket.id}}", "session_id": '
                '"{{ticket.ticket_field_<FIELD_ID>}}", "status": "{{ticket.status}}"}.',
            ),
            "/webhooks/jira": _webhook(
                "A Jira webhook (jira:issue_created, jira:issue_updated)",
                "Signed with X-Hub-Signature, or Authorization: Bearer for Jira Automation. "
                "The session id is read from the configured field.",
            ),
            "/webhooks/posthog": _webhook(
                "A PostHog HTTP webhook destination",
                "Signed with Standard Webhooks headers, or Authorization: Bearer with an "
                "intake token. Body: a bug-report event written by the destination's template.",
            ),
            "/healthz": {
                "get": {
                    "summary": "The process answers",
                    "responses": {"200": {"description": "Up."}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Redis answers",
                    "responses": {
                        "200": {"description": "Ready."},
                        "503": {"description": "Redis unavailable."},
                    },
                }
            },
        },
    }
