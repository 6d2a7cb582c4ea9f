"""Who sent a delivery: bearer tokens and the three senders' signature schemes.

Every comparison is constant-time, and every check answers only yes or no: the
caller answers the same 401 whatever failed, so that a failure reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_id(token: SecretStr) -> str:
    """A name of a configured token that is safe to store (Redis keys): a digest, never the token.

    Tokens are long and random, so their digest tells nothing of them.
    """
    return hashlib.sha256(token.get_secret_value().strip().encode()).hexdigest()[:32]


def matching_token(authorization: str | None, tokens: Iterable[SecretStr]) -> str | None:
    """The ``token_id`` of the configured token the header carries, else None.

    The whole token must match: every token is compared in full, to keep time flat.
    """
    given = bearer_token(authorization)
    if given is None:
        return None
    found = None
    for token in tokens:
        if _same(given, token.get_secret_value().strip()) and found is None:
            found = token_id(token)
    return found


def token_problem(authorization: str | None, tokens: Iterable[SecretStr]) -> str | None:
    """Why the header does not carry one of ``tokens``, whole (None: it does)."""
    if bearer_token(authorization) is None:
        return "no Authorization: Bearer header"
    if matching_token(authorization, tokens) is None:
        return "a bearer token that is not a configured one"
    return None


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
    return _iso_time(headers.get("x-zendesk-webhook-signature-timestamp", ""))


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
    signature = headers.get("x-zendesk-webhook-signature", "")
    timestamp = headers.get("x-zendesk-webhook-signature-timestamp", "")
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
    if not _same(signature.strip(), base64.b64encode(digest).decode()):
        return "a signature that does not match the body and the secret"
    return None


def jira_signature_problem(
    secret: SecretStr, body: bytes, headers: Mapping[str, str]
) -> str | None:
    """Jira admin webhooks: ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``.

    Why the delivery is not Jira's, for the server's log only (None: it is).
    """
    algorithm, _, given = headers.get("x-hub-signature", "").partition("=")
    if algorithm.strip().lower() != "sha256" or not given:
        return "an X-Hub-Signature header that is not sha256=<hex>"
    digest = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
    if not _same(given.strip().lower(), digest):
        return "a signature that does not match the body and the secret"
    return None


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
