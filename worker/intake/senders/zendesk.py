"""``POST /webhooks/zendesk``: a Zendesk trigger's webhook.

Signed: ``X-Zendesk-Webhook-Signature`` is base64(HMAC-SHA256(secret, timestamp +
body)), ``X-Zendesk-Webhook-Signature-Timestamp`` in ISO 8601 and fresh. Named by
``X-Zendesk-Webhook-Invocation-Id`` (not signed) and by its signature. The body is
the trigger's template: ``ticket_id``, ``session_id``, ``status`` and event fields.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request

from worker.attach.events import BugReport, InvalidEvent
from worker.attach.tickets import Ticket
from worker.config import Config
from worker.intake.bodies import (
    MAX_EVENT_BYTES,
    RequestHeaders,
    parse_json,
    read_body,
    require_json,
)
from worker.intake.refusals import DOOR_OFF, unauthorized
from worker.intake.sender import Accepted, Ignored, Sender, TicketStatus, listed
from worker.intake.senders.templates import from_template, json_object, with_session
from worker.intake.tokens import same_secret

log = logging.getLogger(__name__)

DOOR = "/webhooks/zendesk"
SIGNATURE = "x-zendesk-webhook-signature"
SIGNATURE_TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
#: Zendesk's id of one delivery; a resend carries the same one.
INVOCATION_ID = "x-zendesk-webhook-invocation-id"

#: The Zendesk trigger's body: our names for its keys (the rest is the event contract).
_ZENDESK_KEYS = {"ticket_id": "zendesk_ticket"}
#: The ticket's state: ``status`` as ``{{ticket.status}}`` renders it (capitalised, maybe in the
#: account's language, or a custom status's name), and ``status_category`` where the trigger
#: gives one (its five values are fixed), which wins.
_ZENDESK_STATUS = "status"
_ZENDESK_STATUS_CATEGORY = "status_category"


#: Zendesk's statuses and status categories, and what they mean here. "new" is a ticket
#: that was never solved: nothing to reopen, so nothing to record.
_ZENDESK_SOLVED = frozenset({"solved", "closed"})
_ZENDESK_REOPENED = frozenset({"open", "pending", "hold", "on-hold", "on hold"})
_ZENDESK_NEW = "new"

# ----------------------------------------------------------------- its signature


def _fresh(moment: datetime, now: datetime, tolerance_seconds: float) -> bool:
    return abs((now - moment).total_seconds()) <= tolerance_seconds


def _iso_time(text: str) -> datetime | None:
    try:
        # Python 3.10's fromisoformat does not read a trailing Z.
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def zendesk_signed_at(headers: Mapping[str, str]) -> datetime | None:
    """The time a Zendesk delivery was signed at, as its timestamp header says."""
    return _iso_time(headers.get(SIGNATURE_TIMESTAMP, ""))


def zendesk_signature_problem(
    secret: SecretStr,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
    tolerance_seconds: float,
) -> str | None:
    """Zendesk: base64(HMAC-SHA256(secret, timestamp + body)), timestamp in ISO 8601.

    Why the delivery is not Zendesk's, for the server's log only (None: it is).
    """
    signature = headers.get(SIGNATURE, "")
    timestamp = headers.get(SIGNATURE_TIMESTAMP, "")
    moment = _iso_time(timestamp)
    if not signature:
        return "no X-Zendesk-Webhook-Signature header"
    if moment is None:
        return "no readable X-Zendesk-Webhook-Signature-Timestamp header"
    if not _fresh(moment, now, tolerance_seconds):
        away = abs((now - moment).total_seconds())
        return f"a stale timestamp ({away:.0f} s away, tolerance {tolerance_seconds:g} s)"
    digest = hmac.new(
        secret.get_secret_value().encode(), timestamp.encode() + body, hashlib.sha256
    ).digest()
    if not same_secret(signature.strip(), base64.b64encode(digest).decode()):
        return "a signature that does not match the body and the secret"
    return None


# ----------------------------------------------------------------- its body


def read_zendesk(
    data: Any, posthog_host: str, signed_at_ms: int
) -> tuple[BugReport | Ignored, TicketStatus | None]:
    """A Zendesk trigger's body: ``ticket_id``, ``session_id``, ``status``, and event fields.

    A solved or closed ticket gets no replay: its status is all that is read;
    ``signed_at_ms`` (the signed timestamp header) orders it.
    """
    event = {
        _ZENDESK_KEYS.get(key, key): value for key, value in json_object(data, "the body").items()
    }
    status = event.pop(_ZENDESK_STATUS, None)
    category = event.pop(_ZENDESK_STATUS_CATEGORY, None)
    event = from_template(event)
    ticket = event.get("zendesk_ticket")
    if ticket is not None and (isinstance(ticket, bool) or not isinstance(ticket, int)):
        raise InvalidEvent('ticket_id: must be a Zendesk ticket id such as "123"')
    state = _zendesk_status(_known(category) or status, event.get("zendesk_ticket"), signed_at_ms)
    if state is not None and state.solved:
        return Ignored("the ticket is solved or closed: no replay is attached to it"), state
    return with_session(event, posthog_host), state


def _known(status: Any) -> str | None:
    """A status or category this door knows, lower case; None for anything else."""
    if not isinstance(status, str):
        return None
    name = status.strip().lower()
    return name if name in _ZENDESK_SOLVED | _ZENDESK_REOPENED | {_ZENDESK_NEW} else None


def _zendesk_status(status: Any, ticket: Any, signed_at_ms: int) -> TicketStatus | None:
    """What the delivery says of the ticket's life. A status this door does not know
    (translated, a custom status's name) changes no link's life: the delivery is never
    refused for it, since Zendesk does not resend after a 4xx and its report would be lost."""
    if not isinstance(status, str) or not status.strip() or not isinstance(ticket, int):
        return None
    name = _known(status)
    if name is None:
        log.info(
            "%s: status %r is not one this door knows: no link's life changes "
            "(send status_category with it)",
            Ticket.zendesk(ticket),
            status[:60],
        )
        return None
    if name == _ZENDESK_NEW:
        return None
    return TicketStatus(str(Ticket.zendesk(ticket)), name in _ZENDESK_SOLVED, signed_at_ms)


# ----------------------------------------------------------------- its door


def is_on(config: Config) -> bool:
    return config.intake.zendesk_webhook_secret is not None


async def accept(
    request: Request, headers: RequestHeaders, config: Config, slots: asyncio.Semaphore
) -> Accepted:
    secret = config.intake.zendesk_webhook_secret
    if secret is None:
        raise DOOR_OFF
    body = await read_body(request, headers, MAX_EVENT_BYTES, slots)
    now = datetime.now(timezone.utc)
    tolerance = config.intake.timestamp_tolerance_seconds
    signed_at = zendesk_signed_at(headers)
    problem = zendesk_signature_problem(secret, body, headers, now, tolerance)
    if problem is not None or signed_at is None:
        raise unauthorized(problem or "no readable signature timestamp")
    require_json(headers)
    signed_ms = int(signed_at.timestamp() * 1000)
    report, status = read_zendesk(parse_json(body), config.posthog.host, signed_ms)
    # The invocation id is not signed: a resend under a new one (or none) within the
    # timestamp window carries the same signature, which is remembered too.
    identities = tuple(
        value for value in (headers.get(INVOCATION_ID), headers.get(SIGNATURE, "").strip()) if value
    )
    return Accepted(listed(report), identities, body, status)


SENDER = Sender(DOOR, INVOCATION_ID, is_on, accept)
