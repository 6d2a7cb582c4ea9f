"""``POST /v1/bug-reports``: the intake's own API, for a backend or a script.

Authenticated by an intake token (``Authorization: Bearer``); a delivery is named
by its ``Idempotency-Key``, scoped to the token; the body is one event of the event
contract, or a list of up to 1,000, all valid or none taken.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from worker.attach.events import BugReport, InvalidEvent, parse_event
from worker.config import Config
from worker.intake.bodies import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    RequestHeaders,
    parse_json,
    read_body,
    require_json,
)
from worker.intake.refusals import DOOR_OFF, Refused, unauthorized
from worker.intake.sender import Accepted, Sender
from worker.intake.senders.templates import json_object, session_in
from worker.intake.tokens import matching_token, token_problem

DOOR = "/v1/bug-reports"
#: The caller's name for one delivery: a resend under it is enqueued once.
IDEMPOTENCY_KEY = "idempotency-key"

#: The most events one ``POST /v1/bug-reports`` may carry.
MAX_BATCH_EVENTS = 1000
#: The longest ``Idempotency-Key`` (a UUID is 36).
MAX_IDEMPOTENCY_KEY_CHARS = 255


def read_bug_reports(data: Any, posthog_host: str) -> list[BugReport]:
    """``POST /v1/bug-reports``: one event or a list of up to 1,000, all valid or none taken."""
    if isinstance(data, list):
        if not data:
            raise InvalidEvent("the list holds no events")
        if len(data) > MAX_BATCH_EVENTS:
            raise InvalidEvent(f"a list holds at most {MAX_BATCH_EVENTS} events, not {len(data)}")
        reports = []
        for number, item in enumerate(data, start=1):
            try:
                reports.append(_bug_report(item, posthog_host))
            except InvalidEvent as exc:
                raise InvalidEvent(f"event {number}: {exc}") from None
        return reports
    return [_bug_report(data, posthog_host)]


def _bug_report(item: Any, posthog_host: str) -> BugReport:
    event = dict(json_object(item, "an event"))
    if "session_id" in event:
        event = session_in(event, posthog_host)
    return parse_event(event)


def is_on(config: Config) -> bool:
    return bool(config.intake.tokens)


async def accept(
    request: Request, headers: RequestHeaders, config: Config, slots: asyncio.Semaphore
) -> Accepted:
    tokens = config.intake.tokens
    if not tokens:
        raise DOOR_OFF
    token = matching_token(headers.get("authorization"), tokens)
    if token is None:
        raise unauthorized(token_problem(headers.get("authorization"), tokens) or "")
    body = await read_body(request, headers, MAX_BATCH_BYTES, slots)
    require_json(headers)
    data = parse_json(body)
    if not isinstance(data, list) and len(body) > MAX_EVENT_BYTES:
        raise Refused(413, f"one event is at most {MAX_EVENT_BYTES // 1024} KiB")
    key = headers.get(IDEMPOTENCY_KEY)
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise Refused(400, f"Idempotency-Key: must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters")
    # Scoped to the token: another token's key names another delivery.
    identities = () if key is None else (f"{token}:{key}",)
    reports = read_bug_reports(data, config.posthog.host)
    return Accepted(reports, identities, body, token=token)


SENDER = Sender(DOOR, IDEMPOTENCY_KEY, is_on, accept)
