"""One kept-alive HTTP/1.1 connection per thread to one API, on the standard library.

The three requests of a job (PostHog share, the ticket write, the tag or
comment) go through here. Through this module a request costs about a third
of the CPU it costs through ``requests.Session`` and two thirds of urllib3's
(``bench/http_clients.py`` measures all three in one run): for a worker whose
budget is 3 ms of CPU per job, the libraries' generality (adapters, hooks,
cookies, pools, content decoding) was most of the cost. What this module
keeps from them:

- the environment's proxy settings, chosen by requests' own rules
  (``HTTP(S)_PROXY``, ``NO_PROXY``) once, when the client is built;
- certificate checks against certifi's bundle, or ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE``, as requests does;
- separate connect and read timeouts;
- requests' exceptions and ``Response`` objects, so the integrations' error
  mapping is the same for every client they use.

What it deliberately lacks: any retry (a resent write is a double post; the
caller decides), redirects (never followed), compression (small JSON answers;
``identity`` is asked for), and a pool beyond one connection per thread (a
worker thread runs one job at a time).

pycurl would be cheaper still, but libcurl silently resends a request, body
included, when a reused connection dies before answering: a second note.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers
from urllib3.util.wait import wait_for_read

Timeouts = tuple[float, float]


class NotSent(requests.ConnectionError):
    """No connection could be opened: the request certainly never left this machine."""


class KeptAliveConnection:
    """Sends requests to one origin (scheme, host, port) over one connection per thread.

    A connection the server has closed while idle (keep-alive timeout) is
    noticed before anything is written to it and replaced, so that case is
    never mistaken for a request lost in flight.
    """

    def __init__(
        self,
        base_url: str,
        timeouts: Timeouts,
        *,
        proxy: str | None = None,
        verify: bool | str = True,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        self.origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._connect_timeout, self._read_timeout = timeouts
        self._context = _tls_context(verify) if self._https else None
        self._proxy = _Proxy(proxy) if proxy else None
        # http:// through a proxy: the request line carries the absolute URL, and
        # the proxy's credentials go with every request (for https, with the tunnel).
        self._absolute_target = self._proxy is not None and not self._https
        self._proxy_headers = (
            {"Proxy-Authorization": self._proxy.authorization}
            if self._absolute_target and self._proxy and self._proxy.authorization
            else {}
        )
        self._local = threading.local()

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> requests.Response:
        """Send one request and read the whole answer; raise requests' exceptions."""
        if not url.startswith(self.origin + "/"):
            raise ValueError(f"{url!r} is not on {self.origin}")
        target = url if self._absolute_target else url[len(self.origin) :]
        if self._proxy_headers:
            headers = {**headers, **self._proxy_headers}
        conn = self._open()
        try:
            conn.request(method, target, body=body, headers=headers)
        except OSError as exc:
            conn.close()
            # Part of it may have arrived: treated as sent.
            raise requests.ConnectionError(f"connection lost while sending: {exc}") from None
        try:
            raw = conn.getresponse()
            content = raw.read()
        except TimeoutError:
            conn.close()
            raise requests.ReadTimeout(f"no answer within {self._read_timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise requests.ConnectionError(
                f"connection lost before a complete answer: {type(exc).__name__}"
            ) from None
        return _response(url, raw, content)

    def _open(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new_connection()
        if conn.sock is not None and wait_for_read(conn.sock, timeout=0.0):
            # An idle connection has nothing to read unless the server closed it.
            conn.close()
        if conn.sock is None:
            try:
                conn.connect()
            except TimeoutError:
                conn.close()
                raise requests.ConnectTimeout(
                    f"no connection within {self._connect_timeout:g} s"
                ) from None
            except OSError as exc:
                conn.close()
                raise NotSent(f"could not connect: {exc}") from None
            assert conn.sock is not None
            conn.sock.settimeout(self._read_timeout)
        return conn

    def _new_connection(self) -> http.client.HTTPConnection:
        proxy = self._proxy
        host, port = (proxy.host, proxy.port) if proxy else (self._host, self._port)
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._context
            )
            if proxy:
                tunnel_headers = (
                    {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                )
                conn.set_tunnel(self._host, self._port, headers=tunnel_headers)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        return conn


class _Proxy:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"unsupported proxy {parts.scheme}://{parts.hostname or ''}: "
                "only http:// proxies are supported"
            )
        self.host: str = parts.hostname
        self.port: int = parts.port or 80
        self.authorization: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.authorization = "Basic " + base64.b64encode(pair.encode()).decode()


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        context = ssl.create_default_context(cafile=bundle)
    return context


def _response(url: str, raw: http.client.HTTPResponse, content: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = raw.status
    response.reason = raw.reason
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in raw.getheaders():
        # Repeated headers are joined, as requests does.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    response.headers = headers
    response.url = url
    response.encoding = get_encoding_from_headers(headers)
    # The whole body is already read; requests.Response has no public way to take it.
    response._content = content
    return response
