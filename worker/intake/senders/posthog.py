"""``POST /webhooks/posthog``: a PostHog destination's webhook.

Signed by the Standard Webhooks scheme (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``, checked by its reference library) when the destination signs,
else sent with an intake token. Named by ``webhook-id``, else by its body. The body
is a bug-report event written by the destination's body template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.requests import Request

from worker.attach.events import BugReport
from worker.config import Config
from worker.intake.bodies import (
    MAX_EVENT_BYTES,
    RequestHeaders,
    parse_json,
    read_body,
    require_json,
)
from worker.intake.deliveries import body_digest
from worker.intake.refusals import DOOR_OFF, unauthorized
from worker.intake.sender import Accepted, Ignored, Sender, listed
from worker.intake.senders.templates import from_template, json_object, with_session
from worker.intake.tokens import matching_token, token_problem

DOOR = "/webhooks/posthog"
SIGNATURE = "webhook-signature"
#: The Standard Webhooks id of one delivery; a resend carries the same one.
WEBHOOK_ID = "webhook-id"


def standard_webhook_problem(
    secret: SecretStr, body: bytes, headers: Mapping[str, str]
) -> str | None:
    """PostHog's signing destinations: Standard Webhooks, checked by its own library.

    The library checks a 5-minute tolerance; a malformed header or a body that
    is not UTF-8 raises ``ValueError`` there. Why the delivery is not PostHog's, in the
    library's words, for the server's log only (None: it is).
    """
    try:
        Webhook(secret.get_secret_value().strip()).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError) as exc:
        return f"a Standard Webhooks signature refused ({exc or type(exc).__name__})"
    return None


def read_posthog(data: Any, posthog_host: str) -> BugReport | Ignored:
    """A PostHog destination's body: a bug-report event written by its body template."""
    return with_session(from_template(json_object(data, "the body")), posthog_host)


def is_on(config: Config) -> bool:
    return config.intake.posthog_webhook_secret is not None or bool(config.intake.tokens)


async def accept(
    request: Request, headers: RequestHeaders, config: Config, slots: asyncio.Semaphore
) -> Accepted:
    intake = config.intake
    if intake.posthog_webhook_secret is None and not intake.tokens:
        raise DOOR_OFF
    body = await read_body(request, headers, MAX_EVENT_BYTES, slots)
    signed = SIGNATURE in headers
    token = None
    if signed and intake.posthog_webhook_secret is not None:
        problem = standard_webhook_problem(intake.posthog_webhook_secret, body, headers)
    elif signed:
        problem = "a signed delivery, but POSTHOG_WEBHOOK_SECRET is not set"
    else:
        authorization = headers.get("authorization")
        token = matching_token(authorization, intake.tokens)
        # Why it failed is worked out only when it did.
        problem = None if token else token_problem(authorization, intake.tokens)
    if problem is not None:
        raise unauthorized(problem)
    require_json(headers)
    report = read_posthog(parse_json(body), config.posthog.host)
    identity = headers.get(WEBHOOK_ID) or body_digest(body)
    return Accepted(listed(report), (identity,), body, token=token)


SENDER = Sender(DOOR, WEBHOOK_ID, is_on, accept)
