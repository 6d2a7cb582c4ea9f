"""HTTP plumbing shared by the integrations: sessions, timeouts, error mapping.

Retry policy, layer 1 (in process): ``call_with_retries`` repeats a request at
most ``IN_PROCESS_ATTEMPTS`` times with short jittered waits, and only when
repeating cannot post twice: reads, the idempotent PostHog PATCH, and any
request that never left this machine (connection refused or connect timeout).
Anything needing a longer wait is raised as ``RetryLater`` and goes back to the
queue (layer 2, ``worker.retry_policy``). The libraries' own hidden retries
(urllib3 ``Retry``, zenpy's 429 sleep, jira's ResilientSession) are disabled.
"""

from __future__ import annotations

import email.utils
import logging
import time
import urllib.request
from collections.abc import Callable
from datetime import timezone
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from integrations.errors import PermanentFailure, RetryLater

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one request inside one job, counting the first.
IN_PROCESS_ATTEMPTS = 3
#: The longest in-process wait; a server asking for more goes back to the queue.
IN_PROCESS_MAX_WAIT_SECONDS = 2.0

USER_AGENT = "replay-attach/0.1 (+https://github.com/replay-attach/replay-attach)"


Timeouts = tuple[float, float]


#: Called before every request; blocks briefly or raises ``RetryLater`` when the
#: system's request budget is used up (see ``worker.rate_limits``).
Throttle = Callable[[], None]


class _BudgetedAdapter(HTTPAdapter):
    """An adapter that asks the request budget before anything is sent."""

    def __init__(self, throttle: Throttle | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._throttle = throttle

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if self._throttle is not None:
            self._throttle()
        return super().send(request, *args, **kwargs)


def mount_adapter(
    session: requests.Session, throttle: Throttle | None = None, pool_size: int = 16
) -> None:
    """No transport retries at all; the request budget checked before each request."""
    adapter = _BudgetedAdapter(throttle, max_retries=0, pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)


def configure_session(
    session: requests.Session, throttle: Throttle | None = None, pool_size: int = 16
) -> requests.Session:
    """Keep-alive, no transport retries, no per-request environment scan."""
    mount_adapter(session, throttle, pool_size)
    session.headers["User-Agent"] = USER_AGENT
    # requests re-reads the proxy environment variables on every request, which
    # costs more CPU than the rest of the request. Without any proxy settings
    # there is nothing to find, so skip it; with them, keep requests' handling
    # (NO_PROXY matching included).
    if not urllib.request.getproxies():
        session.trust_env = False
    return session


def new_session(throttle: Throttle | None = None, pool_size: int = 16) -> requests.Session:
    return configure_session(requests.Session(), throttle, pool_size)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header in either form (seconds or HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
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
    """True when the request certainly did not reach the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", inner)
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


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
    if status == 429 or status == 409 or status == 408 or status >= 500:
        return RetryLater(
            system,
            reason,
            status=status,
            retry_after=retry_after,
            maybe_applied=is_write and status >= 500,
        )
    return PermanentFailure(system, reason, status=status)


def _retryable_in_process(repeatable: bool) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if not isinstance(exc, RetryLater):
            return False
        if exc.retry_after is not None and exc.retry_after > IN_PROCESS_MAX_WAIT_SECONDS:
            return False
        return repeatable or exc.never_sent

    return check


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryLater) and exc.retry_after is not None:
        return exc.retry_after
    return float(wait_random_exponential(multiplier=0.2, max=IN_PROCESS_MAX_WAIT_SECONDS)(state))


def call_with_retries(call: Callable[[], T], *, repeatable: bool) -> T:
    """Run ``call``; repeat it briefly only where that cannot duplicate a write."""
    retrying = Retrying(
        stop=stop_after_attempt(IN_PROCESS_ATTEMPTS),
        wait=_wait,
        retry=retry_if_exception(_retryable_in_process(repeatable)),
        reraise=True,
        before_sleep=lambda state: log.info(
            "retrying in process after: %s", state.outcome.exception() if state.outcome else "?"
        ),
    )
    return retrying(call)
