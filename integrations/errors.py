"""The small error taxonomy every integration translates its failures into, and the translation.

    IntegrationError       a call to PostHog, Zendesk or Jira failed (``reason`` is safe to show)
    ├── RetryLater         transient: try again after ``retry_after`` (None: our backoff);
    │                      ``maybe_applied``: a write may have landed;
    │                      ``never_sent``: it never left this machine
    └── PermanentFailure   retrying cannot help until a person mends the cause
        ├── NotConfigured  the event targets a system with no credentials here
        └── SharingDisabled  PostHog's organisation switched public sharing off

``IntegrationError`` is one branch of the project's root, ``ReplayAttachError``
(``integrations.root_error``; docs/architecture.md draws the whole tree).

Each integration decides, once, at its boundary, whether a failure is worth
retrying later or is permanent, and words the reason for a support engineer:
``status_failure`` for an answer with an error status (3xx included: redirects
are never followed), ``transport_failure`` for no answer at all. Nothing above
the integrations sees requests, zenpy or jira exceptions.
"""

from __future__ import annotations

import email.utils
import re
import ssl
import time
from datetime import timezone
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, SSLError
from urllib3.exceptions import ProxyError as Urllib3ProxyError

from integrations.root_error import ReplayAttachError


class IntegrationError(ReplayAttachError):
    """A call to PostHog, Zendesk or Jira failed.

    ``reason`` is safe to show and store: it never contains a secret.
    """

    def __init__(self, system: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.system = system
        self.reason = reason
        self.status = status


class RetryLater(IntegrationError):
    """A transient failure: try again after ``retry_after`` seconds (None: our backoff).

    ``maybe_applied`` is true when a write may have reached the vendor even
    though no confirmation came back (a reset or timeout after sending); the
    next attempt must look at the ticket before writing again. ``retry_by``
    (a unix time) asks that the next attempt come no later than that.
    """

    def __init__(
        self,
        system: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
        never_sent: bool = False,
        retry_by: float | None = None,
    ) -> None:
        super().__init__(system, reason, status=status)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
        self.never_sent = never_sent
        self.retry_by = retry_by


class PermanentFailure(IntegrationError):
    """Retrying cannot help until a person mends the cause named in ``reason``."""


class NotConfigured(PermanentFailure):
    """The event targets a system this deployment has no credentials for."""


class SharingDisabled(PermanentFailure):
    """PostHog's organisation does not allow public links (``allow_publicly_shared_resources``):
    no recording can be shared, whichever it is."""


def redirect_reason(system: str, response: requests.Response) -> str:
    """Why a redirect is a failure here, naming where it pointed.

    Only scheme, host, port and path are named: a query string or user info
    in the Location could carry a secret.
    """
    try:
        parts = urlsplit(response.headers.get("Location", ""))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed Location, e.g. an invalid port
        parts, host, port = urlsplit(""), "", ""
    if parts.scheme and host:
        target = f"{parts.scheme}://{host}{port}{parts.path}"
    else:
        target = parts.path or "somewhere else"
    return (
        f"{system} answered with a redirect ({response.status_code}) to {target}: "
        "check the configured URL (https, host name)"
    )


# RFC 9110's delay-seconds: ASCII digits only (str.isdigit also takes "²" and "٣").
_DELAY_SECONDS = re.compile(r"[0-9]+")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header in either form (seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _never_left(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server.

    requests wraps urllib3's ``MaxRetryError``, whose ``reason`` is the error
    met while connecting: to the server or, wrapped in urllib3's
    ``ProxyError``, to the proxy. A certificate that fails verification is
    refused in the TLS handshake, before anything is written.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", inner)
    if isinstance(reason, Urllib3ProxyError):
        reason = reason.original_error
    if isinstance(reason, SSLError):
        reason = reason.args[0] if reason.args else None
    return isinstance(
        reason, (NewConnectionError, ConnectTimeoutError, ssl.SSLCertVerificationError)
    )


def transport_failure(
    system: str, what: str, exc: requests.RequestException, *, is_write: bool
) -> RetryLater:
    """Map a requests exception (no response) to ``RetryLater``."""
    never_sent = _never_left(exc)
    if never_sent:
        reason = f"{system} could not be reached while trying to {what} (connection failed)"
    elif isinstance(exc, requests.Timeout):
        reason = f"{system} did not answer in time while trying to {what} (read timeout)"
    else:
        reason = f"{system} dropped the connection while trying to {what}"
    return RetryLater(
        system, reason, maybe_applied=is_write and not never_sent, never_sent=never_sent
    )


def status_failure(
    system: str,
    response: requests.Response,
    reason: str,
    *,
    retry_after: float | None = None,
    is_write: bool = False,
) -> RetryLater | PermanentFailure:
    """Decide retry-later or permanent from an HTTP error status.

    5xx after a write is treated as "maybe applied": a proxy can fail after
    the vendor applied it, and a check before writing again is cheap.
    """
    status = response.status_code
    if retry_after is None:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if 300 <= status < 400:
        return PermanentFailure(system, redirect_reason(system, response), status=status)
    if status == 429 or status == 409 or status == 408 or status >= 500:
        return RetryLater(
            system,
            reason,
            status=status,
            retry_after=retry_after,
            maybe_applied=is_write and status >= 500,
        )
    return PermanentFailure(system, reason, status=status)
