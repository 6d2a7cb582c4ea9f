"""HTTP plumbing shared by the integrations: sessions, timeouts, error mapping.

Retry policy, layer 1 (in process): ``call_with_retries`` repeats a request at
most ``IN_PROCESS_ATTEMPTS`` times with short jittered waits, and only when
repeating cannot post twice: reads, the idempotent PostHog PATCH, and any
request that never left this machine (connection refused or connect timeout).
Anything needing a longer wait is raised as ``RetryLater`` and goes back to the
queue (layer 2, ``worker.jobs.retry_policy``). The libraries' own hidden retries
(urllib3 ``Retry``, zenpy's 429 sleep, jira's ResilientSession) are disabled.
"""

from __future__ import annotations

import email.utils
import json
import logging
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import timezone
from typing import Any, NoReturn, TypeVar, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from urllib3 import HTTPConnectionPool, Timeout
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import ProxyError as Urllib3ProxyError

from integrations.errors import PermanentFailure, RetryLater

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one request inside one job, counting the first.
IN_PROCESS_ATTEMPTS = 3
#: The longest in-process wait; a server asking for more goes back to the queue.
IN_PROCESS_MAX_WAIT_SECONDS = 2.0

USER_AGENT = "replay-attach/0.1 (+https://github.com/replay-attach/replay-attach)"

#: (connect, read) timeouts in seconds.
Timeouts = tuple[float, float]


#: Called before every request; blocks briefly or raises ``RetryLater`` when the
#: system's request budget is used up (see ``worker.jobs.rate_limits``).
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


class ErrorStatus(Exception):
    """A response with a status other than 2xx, raised to be mapped by the integration."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class RedirectRefused(Exception):
    """A library's session was answered with a redirect; it is never followed."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _refuse_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.is_redirect:
        raise RedirectRefused(response)


def refuse_redirects(session: requests.Session) -> None:
    """Make ``session`` raise ``RedirectRefused`` instead of following a redirect.

    requests follows a 301/302 on a POST as a GET, and drops the credentials
    on a change of host: for an API client that is always a configuration
    error (``http://`` for ``https://``), to be reported, not followed.
    """
    session.hooks["response"].append(_refuse_redirect)


def configure_session(
    session: requests.Session, throttle: Throttle | None = None, pool_size: int = 16
) -> requests.Session:
    """Keep-alive, no transport retries, no redirects, no per-request environment scan."""
    mount_adapter(session, throttle, pool_size)
    refuse_redirects(session)
    session.headers["User-Agent"] = USER_AGENT
    # requests re-reads the proxy environment variables on every request.
    # Without any proxy settings there is nothing to find, so skip it; with
    # them, keep requests' handling (NO_PROXY matching included).
    if not urllib.request.getproxies():
        session.trust_env = False
    return session


class _Urllib3Errors(HTTPAdapter):
    """requests' own translation of a urllib3 exception already raised.

    ``HTTPAdapter.send`` is where requests turns urllib3's exceptions into its
    own (``ConnectTimeout``, ``SSLError``, ``ProxyError``, ``ReadTimeout``,
    ``ConnectionError`` wrapping urllib3's ``MaxRetryError``). Here ``send`` is
    handed a stand-in pool whose ``urlopen`` raises that exception, so the
    mapping stays requests' own, whatever its version; nothing is sent.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1)
        self._error = error

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def cert_verify(self, *args: Any, **kwargs: Any) -> None:
        pass

    def urlopen(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise self._error


class JsonApi:
    """JSON requests to one API over a kept-alive connection per thread.

    The job's hot path: urllib3 sends each request on a pool that requests'
    ``HTTPAdapter`` set up once, when this is built, from the environment read
    by requests' rules (``HTTP(S)_PROXY`` and ``NO_PROXY``, an ``https://``
    origin reached through a CONNECT tunnel; ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE``, else certifi). Answers come back as requests'
    ``Response`` and failures as requests' exceptions, so the integrations map
    errors the same way for every client they use. The request budget is asked
    before every request. Build one per thread: the pool keeps one connection.

    What the transport guarantees:

    - no request is ever resent (``Retry(0, read=False)``, requests' default):
      one that fails after it was written is raised, never repeated;
    - a pooled connection is checked before it is reused, so one the server
      closed while idle is replaced before anything is written to it;
    - redirects are not followed: an API that answers a write with a redirect
      is misconfigured (``http://`` for ``https://``, a moved host), and
      following it would resend the write or turn it into a GET. The 3xx is
      returned, and ``is_success`` treats it as a failure so the job says so.
    """

    def __init__(
        self,
        base_url: str,
        timeouts: Timeouts,
        *,
        headers: Mapping[str, str] | None = None,
        auth: AuthBase | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._throttle = throttle
        # requests validates the headers here (a line break in a value is refused).
        template = requests.Request(
            "GET", self.base_url + "/", headers=dict(headers or {}), auth=auth
        ).prepare()
        parts = urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        settings = requests.Session().merge_environment_settings(
            self.base_url, {}, None, None, None
        )
        proxy = select_proxy(self.base_url, settings["proxies"])
        proxies = {parts.scheme: proxy} if proxy else {}
        verify = settings["verify"]
        self._adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        # requests' pool for the origin: a proxy manager's when proxied (its credentials,
        # a CONNECT tunnel for https), the CA bundle set on it by cert_verify.
        self._pool = cast(
            HTTPConnectionPool,
            self._adapter.get_connection_with_tls_context(template, verify, proxies),
        )
        self._adapter.cert_verify(  # type: ignore[no-untyped-call]  # untyped in the stubs
            self._pool, self.base_url, verify, None
        )
        # http:// through a proxy: the request line carries the absolute URL.
        self._absolute = self._adapter.request_url(template, proxies) != template.path_url
        self._retries = self._adapter.max_retries
        self._timeout = Timeout(connect=timeouts[0], read=timeouts[1])
        self._headers = {
            name: value
            for name, value in template.headers.items()
            if name.lower() != "content-length"
        }
        self._headers["User-Agent"] = USER_AGENT
        self._headers["Accept"] = "application/json"
        self._json_headers = {**self._headers, "Content-Type": "application/json"}

    def send(self, method: str, url: str, payload: Any = None) -> requests.Response:
        """Send one request (``payload`` as JSON) and read the whole answer.

        Raises requests' exceptions, and ``ValueError`` for a URL of another origin.
        """
        if not url.startswith(self._origin + "/"):
            raise ValueError(f"{url!r} is not on {self._origin}")
        headers = self._headers
        body: bytes | None = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers = self._json_headers
        elif method not in ("GET", "HEAD"):
            body = b""  # sent as Content-Length: 0
        if self._throttle is not None:
            self._throttle()
        try:
            answer = self._pool.urlopen(
                method,
                url if self._absolute else url[len(self._origin) :],
                body=body,
                headers=headers,
                retries=self._retries,
                redirect=False,
                assert_same_host=False,
                timeout=self._timeout,
            )
        except (HTTPError, OSError) as exc:
            _Urllib3Errors(exc).send(requests.Request(method, url).prepare())
            raise  # send() raises; this only satisfies the type checker
        response = requests.Response()
        response.status_code = answer.status
        response.reason = answer.reason or ""
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = url
        # Read whole above (urllib3 preloads it); Response has no public way to take it.
        response._content = answer.data
        return response

    def close(self) -> None:
        self._adapter.close()


def is_success(response: requests.Response) -> bool:
    """2xx only: ``Response.ok`` is also true for an unfollowed redirect."""
    return 200 <= response.status_code < 300


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


def _retrying(repeatable: bool) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(IN_PROCESS_ATTEMPTS),
        wait=_wait,
        retry=retry_if_exception(_retryable_in_process(repeatable)),
        reraise=True,
        before_sleep=lambda state: log.info(
            "retrying in process after: %s", state.outcome.exception() if state.outcome else "?"
        ),
    )


# Built once, not per call: tenacity keeps each call's state per thread, so the
# worker threads share these.
# Not reentrant: a call passed in must not itself use call_with_retries.
_RETRYING = {repeatable: _retrying(repeatable) for repeatable in (True, False)}


def call_with_retries(call: Callable[[], T], *, repeatable: bool) -> T:
    """Run ``call``; repeat it briefly only where that cannot duplicate a write.

    The first attempt runs outside tenacity: its bookkeeping for one call (state,
    futures, an action list) outweighs the call's own work, and almost every
    call succeeds the first time. A failure is handed to tenacity as the outcome
    of its first attempt, without calling again, so tenacity alone decides
    whether, when and how often to try again.
    """
    try:
        return call()
    except RetryLater as exc:
        if not _retryable_in_process(repeatable)(exc):
            raise
        first_failure: RetryLater | None = exc

    def attempt() -> T:
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return call()

    return _RETRYING[repeatable](attempt)
