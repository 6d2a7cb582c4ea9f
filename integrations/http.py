"""The integrations' HTTP transport: the hot path's ``JsonApi``, the sessions zenpy and jira use.

Neither ever retries nor follows a redirect: retrying is decided once, above
the transport (``integrations.retries``), and failures are classified in
``integrations.errors``. The libraries' own hidden retries (urllib3's
``Retry``, zenpy's 429 sleep, jira's ResilientSession) are switched off here.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy
from urllib3 import HTTPConnectionPool, Timeout
from urllib3.exceptions import HTTPError

from integrations import metrics
from integrations.deadlines import Watch, deadlines
from integrations.root_error import ReplayAttachError

USER_AGENT = "replay-attach/0.1 (+https://github.com/replay-attach/replay-attach)"

#: (connect, read) timeouts in seconds.
Timeouts = tuple[float, float]


#: Called before every request; blocks briefly or raises ``RetryLater`` when the
#: system's request budget is used up (see ``worker.jobs.rate_limits``).
Throttle = Callable[[], None]


class _BudgetedAdapter(HTTPAdapter):
    """An adapter that asks the request budget before anything is sent, and counts requests."""

    def __init__(self, throttle: Throttle | None, system: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._throttle = throttle
        self._system = system

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if self._throttle is not None:
            self._throttle()
        started = time.perf_counter()
        try:
            response = super().send(request, *args, **kwargs)
        except requests.RequestException:
            metrics.observe(self._system, str(request.method), None, time.perf_counter() - started)
            raise
        metrics.observe(
            self._system, str(request.method), response.status_code, time.perf_counter() - started
        )
        return response


def mount_adapter(
    session: requests.Session,
    throttle: Throttle | None = None,
    pool_size: int = 16,
    *,
    system: str,
) -> None:
    """No transport retries at all; the request budget checked before each request."""
    adapter = _BudgetedAdapter(
        throttle, system, max_retries=0, pool_connections=4, pool_maxsize=pool_size
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)


class ErrorStatus(ReplayAttachError):
    """A response with a status other than 2xx, raised to be mapped by the integration."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class RedirectRefused(ReplayAttachError):
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
    session: requests.Session,
    throttle: Throttle | None = None,
    pool_size: int = 16,
    *,
    system: str,
) -> requests.Session:
    """Keep-alive, no transport retries, no redirects, no per-request environment scan."""
    mount_adapter(session, throttle, pool_size, system=system)
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


def _watched(connection_class: type[Any], watch: Watch) -> type[Any]:
    """``connection_class`` whose socket, once connected, ``watch`` can shut down."""

    class WatchedConnection(connection_class):  # type: ignore[misc]
        def connect(self) -> None:
            super().connect()
            watch.sock = self.sock

    return WatchedConnection


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
    - a request whose whole answer has not come within the connect and read
      timeouts together fails as a read timeout (``integrations.deadlines``),
      however the server drips it;
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
        system: str,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._throttle = throttle
        #: The vendor's name in the request metrics (``integrations.metrics``).
        self._system = system
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
        self._watch = Watch()
        self._pool.ConnectionCls = _watched(self._pool.ConnectionCls, self._watch)
        #: The whole exchange's deadline: a read timeout bounds each wait for data only.
        self._deadline_seconds = timeouts[0] + timeouts[1]
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
        watched = deadlines.start(self._watch, self._deadline_seconds)
        started = time.perf_counter()
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
            metrics.observe(self._system, method, None, time.perf_counter() - started)
            if self._watch.expired:
                raise requests.ReadTimeout(
                    f"no complete answer within {self._deadline_seconds:g} s"
                ) from None
            _Urllib3Errors(exc).send(requests.Request(method, url).prepare())
            raise  # send() raises; this only satisfies the type checker
        finally:
            deadlines.end(watched)
        metrics.observe(self._system, method, answer.status, time.perf_counter() - started)
        response = requests.Response()
        response.status_code = answer.status
        response.reason = answer.reason or ""
        # urllib3's header dict is case-insensitive too: no copy into requests' own.
        response.headers = cast(CaseInsensitiveDict[str], answer.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = url
        # Read whole above (urllib3 preloads it); Response has no public way to take it.
        response._content = answer.data
        return response


def is_success(response: requests.Response) -> bool:
    """2xx only: ``Response.ok`` is also true for an unfollowed redirect."""
    return 200 <= response.status_code < 300
