"""A reusable fake vendor server: a real HTTP/1.1 server on 127.0.0.1 with routing, recording,
latency and fault injection.

The doubles are real servers (not mocks of `requests`) so that the code under test exercises its
real transport: connection pools, keep-alive, timeouts and connection resets all behave as they
would against the vendor.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

# Every fault the doubles can inject. "rate_limited" is not injectable: it is what a request
# refused by `rate_limit_per_minute` is recorded with.
# "redirect" answers 301 to the same path on https, as a load balancer in front of an API does
# for a client configured with http://.
FAULT_KINDS: tuple[str, ...] = (
    "5xx",
    "429",
    "reset",
    "lost_response",
    "slow",
    "500",
    "redirect",
)
# Random faults default to the ones that stay fast and transient: "slow" would stall a
# benchmark for `slow_seconds` per hit, and "redirect" is a configuration error.
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("5xx", "429", "reset", "lost_response")
RATE_LIMITED = "rate_limited"


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header mapping (HTTP header names are case-insensitive)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            self._items[name.lower()] = (name, value)

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


@dataclass(frozen=True)
class Request:
    """What a route handler sees."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    json: Any
    # Why a non-empty body is not JSON; None when it parsed (or was empty).
    json_error: str | None = None
    # Named groups of the route's regex.
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    """What a route handler returns: a JSON body (`json`) or raw bytes (`body`)."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if self.body is not None:
            return self.body, self.content_type or "application/octet-stream"
        if self.json is None and self.status == 204:
            return b"", self.content_type or "text/plain"
        payload = json.dumps(self.json, separators=(",", ":")).encode()
        return payload, self.content_type or "application/json; charset=utf-8"


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, json=obj, headers=dict(headers or {}))


def html_response(status: int, text: str) -> Response:
    return Response(status=status, body=text.encode(), content_type="text/html; charset=utf-8")


@dataclass
class RecordedRequest:
    """One request as the double received it, whatever happened to it afterwards."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    json: Any
    fault: str | None
    time: float
    # The client's source port: equal ports on two requests mean a reused keep-alive connection.
    client_port: int = 0
    # Status sent back; None when no response was sent ("reset", "lost_response").
    status: int | None = None


Handler = Callable[[Request], Response]
_D = TypeVar("_D", bound="Double")


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


@dataclass
class _ScriptedFault:
    kind: str
    remaining: int
    method: str | None
    path_regex: re.Pattern[str] | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path_regex is None or self.path_regex.search(path) is not None


def _check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    return kind


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # Load tests open many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], double: Double) -> None:
        self.double = double
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-connection (a worker stopped, a test
        # finished) is routine for a server; anything else is still printed.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients' connection pools are exercised
    # An answer goes out in one write (``_answer``), but a client's request may come in
    # several, and Nagle + delayed ACK would add ~40 ms to any answer split in two.
    disable_nagle_algorithm = True
    server: _Server
    started = 0.0
    _headers_buffer: list[bytes]  # http.server's, filled by send_header()

    def setup(self) -> None:
        super().setup()
        self.server.double._track_connection(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.double._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded on the double instead; stderr noise helps nobody

    def parse_request(self) -> bool:
        # The request line has just arrived (the wait for it on a kept-alive connection is
        # over): the call's latency counts from here, header parsing included.
        self.started = time.monotonic()
        return super().parse_request()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        double = self.server.double
        started = self.started
        arrived = time.time()
        body = self._read_body()
        path, _, raw_query = self.path.partition("?")
        parsed_json: Any = None
        json_error: str | None = None
        if body.strip():
            try:
                parsed_json = json.loads(body)
            except ValueError as exc:
                json_error = str(exc)
        request = Request(
            method=self.command,
            path=unquote(path),
            query=_parse_query(raw_query),
            headers=Headers(self.headers.items()),
            body=body,
            json=parsed_json,
            json_error=json_error,
        )
        fault = double._decide_fault(request.method, request.path)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=body,
            json=parsed_json,
            fault=fault,
            time=arrived,
            client_port=int(self.client_address[1]),
        )
        double._record(record)
        # `latency` is the whole time the call takes, as a vendor's response time is: the
        # double's own work (parsing, handling, encoding) happens inside it, not on top.
        answer_at = started + double.latency

        if fault == "reset":
            double._sleep_until(answer_at)
            self._reset()
            return
        if fault == "5xx":
            response = double.unavailable_response()
        elif fault in ("429", RATE_LIMITED):
            response = double.throttled_response()
        elif fault == "500":
            response = double.internal_error_response()
        elif fault == "redirect":
            response = double.redirect_response(request)
        else:
            response = double._dispatch(request)
            if fault == "lost_response":
                double._sleep_until(answer_at)
                self._reset()
                return
            if fault == "slow":
                double._sleep(double.slow_seconds)
        answer = self._answer(response)
        double._sleep_until(answer_at)
        record.status = response.status
        self._send(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _answer(self, response: Response) -> bytes:
        """The whole answer, status line to body, written later in one send.

        Built before the latency's wait, as a vendor's own work happens within
        its response time; and sent in one piece, as a vendor's server sends a
        small answer, not headers and body in separate packets.
        """
        payload, content_type = response.encode()
        self.send_response(response.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        double = self.server.double
        for name, value in double.EDGE_HEADERS:
            if name not in response.headers:
                self.send_header(name, value)
        for name, value in response.headers.items():
            self.send_header(name, value)
        # What end_headers() would write at once, kept for the one send instead.
        head = b"".join(self._headers_buffer) + b"\r\n"
        self._headers_buffer = []
        return head + payload

    def _send(self, answer: bytes) -> None:
        try:
            self.wfile.write(answer)
        except OSError:
            # The client gave up (e.g. read timeout during a "slow" fault): nothing to tell it.
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP RST instead of a FIN, as a crashing proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile still holds a reference, so the descriptor really closes (with RST, thanks to
        # SO_LINGER 0) in finish(); the server's later shutdown() on it fails harmlessly.
        self.connection.close()


def _parse_query(raw: str) -> dict[str, str]:
    # Repeated parameters are rare in these APIs; the last one wins, as in most frameworks.
    return dict(parse_qsl(raw, keep_blank_values=True))


def basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic` header, or None."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class Double:
    """Base class of the vendor doubles. Subclasses call `route()` in their constructor and
    override the `*_response` hooks to answer errors in their vendor's style."""

    #: Headers on every answer, as the vendor's application and CDN add them: a client
    #: parses twenty-odd headers per answer in production, not the four of a bare server.
    EDGE_HEADERS: tuple[tuple[str, str], ...] = ()

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self._port = port
        self._routes: list[_Route] = []
        # One lock for fault configuration, the RNG and the request log: the handler threads
        # and the test thread all touch them.
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.handler_errors: list[str] = []
        self.latency: float = 0.0
        self.slow_seconds: float = 5.0
        self.rate_limit_per_minute: int | None = None
        self.throttled_count = 0
        self._window: deque[float] = deque()
        self._fault_rate = 0.0
        self._fault_kinds: list[str] = list(DEFAULT_FAULT_KINDS)
        self._rng = random.Random()
        self._scripted: list[_ScriptedFault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        #: Serve HTTPS with this context (set before ``start``); None serves plain HTTP.
        self.tls_context: ssl.SSLContext | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Start serving (idempotent). Restarting after stop() reuses the same port, so
        stop()/start() simulates an outage without reconfiguring clients."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        server = _Server((self.host, self._port), self)
        self._port = int(server.server_address[1])
        if self.tls_context is not None:
            server.socket = self.tls_context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self._port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        self._stopping.set()  # wakes handlers sleeping for latency / "slow"
        server.shutdown()
        server.server_close()
        # Idle keep-alive connections would otherwise keep being served after stop().
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def close_idle_connections(self) -> int:
        """Close every kept-alive connection without a word, as a vendor's load balancer
        does when its keep-alive timeout expires; return how many there were."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return len(connections)

    def __enter__(self: _D) -> _D:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://{self.host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    # ----------------------------------------------------------------- routing

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` on paths fully matching the regex `pattern`."""
        self._routes.append(_Route(method.upper(), re.compile(pattern), handler))

    def _dispatch(self, request: Request) -> Response:
        path_matched = False
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != request.method:
                path_matched = True
                continue
            try:
                return route.handler(replace(request, params=match.groupdict()))
            except Exception:
                # A bug in the double must not look like a vendor answer: keep it for tests.
                with self._lock:
                    self.handler_errors.append(traceback.format_exc())
                return self.internal_error_response()
        if path_matched:
            return self.method_not_allowed_response(request)
        return self.not_found_response(request)

    # ----------------------------------------------------------------- vendor style hooks

    def not_found_response(self, request: Request) -> Response:
        return json_response(404, {"error": "Not found"})

    def method_not_allowed_response(self, request: Request) -> Response:
        return json_response(405, {"error": f"Method {request.method} not allowed"})

    def throttled_response(self) -> Response:
        return json_response(429, {"error": "Too many requests"})

    def unavailable_response(self) -> Response:
        return json_response(503, {"error": "Service unavailable"})

    def redirect_response(self, request: Request) -> Response:
        host = request.headers.get("Host", f"{self.host}:{self.port}")
        response = html_response(301, "<html><body>301 Moved Permanently</body></html>")
        response.headers["Location"] = f"https://{host}{request.path}"
        return response

    def internal_error_response(self) -> Response:
        return json_response(500, {"error": "Internal server error"})

    # ----------------------------------------------------------------- faults

    @property
    def fault_rate(self) -> float:
        return self._fault_rate

    @fault_rate.setter
    def fault_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        with self._lock:
            self._fault_rate = float(rate)

    @property
    def fault_kinds(self) -> list[str]:
        with self._lock:
            return list(self._fault_kinds)

    @fault_kinds.setter
    def fault_kinds(self, kinds: Iterable[str]) -> None:
        checked = [_check_kind(kind) for kind in kinds]
        with self._lock:
            self._fault_kinds = checked

    def seed(self, n: int | None) -> None:
        """Make random faults reproducible (for a given request order)."""
        with self._lock:
            self._rng.seed(n)

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        method: str | None = None,
        path_regex: str | None = None,
    ) -> None:
        """The next `count` requests matching `method` / `path_regex` (re.search) get `kind`."""
        fault = _ScriptedFault(
            kind=_check_kind(kind),
            remaining=count,
            method=method.upper() if method else None,
            path_regex=re.compile(path_regex) if path_regex else None,
        )
        with self._lock:
            self._scripted.append(fault)

    def clear_faults(self) -> None:
        """Drop scripted faults and switch random faults and the rate limit off."""
        with self._lock:
            self._scripted.clear()
            self._fault_rate = 0.0
            self.rate_limit_per_minute = None
            self._window.clear()

    def _decide_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            # Scripted faults first: a test that asks for one must get it deterministically.
            for index, scripted in enumerate(self._scripted):
                if scripted.matches(method, path):
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        del self._scripted[index]
                    return scripted.kind
            limit = self.rate_limit_per_minute
            if limit is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 60.0:
                    self._window.popleft()
                # Only admitted requests fill the window, so a client that backs off recovers.
                if len(self._window) >= limit:
                    self.throttled_count += 1
                    return RATE_LIMITED
                self._window.append(now)
            if self._fault_rate > 0 and self._fault_kinds:
                if self._rng.random() < self._fault_rate:
                    return self._rng.choice(self._fault_kinds)
        return None

    # ----------------------------------------------------------------- recording

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def calls(
        self, method: str | None = None, path_regex: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and a path regex (re.search)."""
        pattern = re.compile(path_regex) if path_regex else None
        with self._lock:
            snapshot = list(self.requests)
        return [
            r
            for r in snapshot
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.path))
        ]

    def calls_since(self, start: int) -> tuple[list[RecordedRequest], int]:
        """Requests recorded from position ``start`` on, and the position after them.

        For polling a long run without rescanning every earlier request.
        ``reset_requests`` starts the positions again from 0.
        """
        with self._lock:
            new = self.requests[start:]
        return new, start + len(new)

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.throttled_count = 0

    # ----------------------------------------------------------------- internals

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # cut short by stop()

    def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (a ``time.monotonic()`` value), if it is still ahead."""
        self._sleep(deadline - time.monotonic())

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)
