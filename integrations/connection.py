"""One kept-alive HTTP/1.1 connection per thread to one API.

The three requests of a job (PostHog share, the ticket write, the tag or
comment) go through here. The standard library opens the connection (TCP,
TLS, a proxy's CONNECT tunnel); the request is written in one send, and the
answer is parsed by llhttp, Node.js's C parser, through ``httptools``.
``http.client`` parses an answer's headers with the ``email`` package: in a
profile of the worker that was the largest single cost of a job, for a budget
of 3 ms of CPU per job, and it grows with every header a vendor adds. Per
request this module costs about a fifth of ``requests.Session``'s CPU and
60% of ``http.client``'s (``bench/http_clients.py`` measures them in one run).

What it keeps from requests:

- the environment's proxy settings, chosen by requests' own rules
  (``HTTP(S)_PROXY``, ``NO_PROXY``) once, when the client is built;
- certificate checks against certifi's bundle, or ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE``, as requests does;
- separate connect and read timeouts;
- requests' exceptions and ``Response`` objects, so the integrations' error
  mapping is the same for every client they use.

What it deliberately lacks: any retry (a resent write is a double post; the
caller decides), redirects (never followed), compression (small JSON answers;
``identity`` is asked for), HEAD requests, and a pool beyond one connection per
thread (a worker thread runs one job at a time).

pycurl would be cheaper still, but libcurl silently resends a request, body
included, when a reused connection dies before answering: a second note.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import httptools
import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers
from urllib3.util.wait import wait_for_read

Timeouts = tuple[float, float]

#: Bytes asked of the socket per read.
_READ_SIZE = 65536
#: An answer's status line and headers may not exceed this (``http.client``
#: allows 100 lines of 64 KiB); a longer one is treated as a broken connection.
MAX_HEAD_BYTES = 256 * 1024
#: Nor its body this: the APIs answer writes with a few kilobytes of JSON.
MAX_BODY_BYTES = 32 * 1024 * 1024

# What may appear in a request line and in header fields (RFC 9110): a value
# with a line break in it would let data inject headers or a second request.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_TARGET = re.compile(r"[\x21-\x7e]+")


class NotSent(requests.ConnectionError):
    """No connection could be opened: the request certainly never left this machine."""


class BadAnswer(Exception):
    """The server's answer broke HTTP/1.1, or ended (or grew) where it must not."""


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
        netloc = parts.netloc.rpartition("@")[2]
        self.origin = f"{parts.scheme}://{netloc}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._connect_timeout, self._read_timeout = timeouts
        self._context = _tls_context(verify) if self._https else None
        self._proxy = _Proxy(proxy) if proxy else None
        # http:// through a proxy: the request line carries the absolute URL, and
        # the proxy's credentials go with every request (for https, with the tunnel).
        self._absolute_target = self._proxy is not None and not self._https
        fixed = {"Host": netloc, "Accept-Encoding": "identity"}
        if self._absolute_target and self._proxy and self._proxy.authorization:
            fixed["Proxy-Authorization"] = self._proxy.authorization
        self._fixed_fields = "".join(_fields(fixed))
        self._local = threading.local()

    def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> requests.Response:
        """Send one request and read the whole answer; raise requests' exceptions.

        ``body=None`` sends no body (GET); ``b""`` sends ``Content-Length: 0``.
        A header or URL that would break the request line or a header field
        raises ``ValueError`` before anything is sent.
        """
        if not url.startswith(self.origin + "/"):
            raise ValueError(f"{url!r} is not on {self.origin}")
        if method == "HEAD" or not _TOKEN.fullmatch(method):
            raise ValueError(f"unsupported method {method!r}")
        target = url if self._absolute_target else url[len(self.origin) :]
        if not _TARGET.fullmatch(target):
            raise ValueError("the URL has spaces, control or non-ASCII characters")
        length = "" if body is None else f"Content-Length: {len(body)}\r\n"
        head = (
            f"{method} {target} HTTP/1.1\r\n{self._fixed_fields}{''.join(_fields(headers))}"
            f"{length}\r\n"
        ).encode("latin-1")
        conn = self._open()
        sock = conn.sock
        assert sock is not None
        try:
            # One send: head and body in separate packets would meet Nagle's delay.
            sock.sendall(head + body if body else head)
        except OSError as exc:
            conn.close()
            # Part of it may have arrived: treated as sent.
            raise requests.ConnectionError(f"connection lost while sending: {exc}") from None
        try:
            answer = _read_answer(sock)
        except TimeoutError:
            conn.close()
            raise requests.ReadTimeout(f"no answer within {self._read_timeout:g} s") from None
        except (OSError, BadAnswer, httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            conn.close()
            raise requests.ConnectionError(
                f"connection lost before a complete answer: {type(exc).__name__}: {exc}"
            ) from None
        if not answer.reusable:
            conn.close()
        return answer.response(url)

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
        """An unopened connection; only its ``connect()`` (TCP, TLS, tunnel) is used."""
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


def _fields(headers: Mapping[str, str]) -> list[str]:
    fields = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise ValueError(f"header {name!r} has a character that is not allowed in HTTP")
        fields.append(f"{name}: {value}\r\n")
    return fields


class _Answer:
    """One answer, assembled from llhttp's callbacks (``httptools``'s parser protocol)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.head_complete = False
        self.complete = False
        #: Whether the connection may carry the next request.
        self.reusable = False
        self._body_bytes = 0
        self._informational = False

    # llhttp's callbacks. Interim answers (1xx) are skipped, as http.client does.

    def on_message_begin(self) -> None:
        if self.complete:
            # More data after the answer: the connection's state is unknown.
            self.reusable = False
            raise BadAnswer("data after the end of the answer")

    def on_status(self, reason: bytes) -> None:
        self.reason += reason  # may arrive in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self._informational = 100 <= status < 200
        self.head_complete = not self._informational

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY_BYTES:
            raise BadAnswer(f"the answer's body exceeds {MAX_BODY_BYTES} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self.reason, self.headers = b"", []
            return
        # llhttp knows this only until the next message begins.
        self.reusable = self.parser.should_keep_alive()
        self.complete = True

    def ends_at_close(self) -> bool:
        """Whether the body runs until the server closes (neither a length nor chunks)."""
        return self.head_complete and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )

    def response(self, url: str) -> requests.Response:
        response = requests.Response()
        response.status_code = self.parser.get_status_code()
        response.reason = self.reason.decode("latin-1")
        # Repeated headers are joined, as requests does, whatever their case.
        merged: OrderedDict[str, tuple[str, str]] = OrderedDict()
        for raw_name, raw_value in self.headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            key = name.lower()
            seen = merged.get(key)
            merged[key] = (name, value) if seen is None else (seen[0], f"{seen[1]}, {value}")
        response.headers = _Headers(merged)
        response.url = url
        response.encoding = get_encoding_from_headers(response.headers)
        # requests.Response has no public way to take an already read body.
        response._content = b"".join(self.body)
        return response


class _Headers(CaseInsensitiveDict[str]):
    """requests' case-insensitive headers, taken whole from fields already merged.

    ``CaseInsensitiveDict`` keeps its items in ``_store``, lowercased name to
    (name as sent, value), as it has since requests 1.0. Filling it item by item
    costs a Python call per header; taken whole, an answer's headers cost 8% less
    of a job's instructions (callgrind), with a vendor's twenty headers per answer.
    """

    _store: OrderedDict[str, tuple[str, str]]

    def __init__(self, store: OrderedDict[str, tuple[str, str]]) -> None:
        self._store = store


def _read_answer(sock: socket.socket) -> _Answer:
    answer = _Answer()
    head_bytes = 0
    while not answer.complete:
        data = sock.recv(_READ_SIZE)
        if not data:
            if answer.ends_at_close():
                answer.complete = True
                break
            raise BadAnswer("the server closed the connection before the answer was complete")
        try:
            answer.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, BadAnswer):
                raise
            if answer.complete:
                break  # data after a complete answer: keep it, not the connection
            raise exc.__context__ from None
        if not answer.head_complete:
            head_bytes += len(data)
            if head_bytes > MAX_HEAD_BYTES:
                raise BadAnswer(f"the answer's headers exceed {MAX_HEAD_BYTES} bytes")
    return answer


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
