"""`Double`, the base class of the fake vendor servers: a real HTTP/1.1 server on 127.0.0.1 with
routing, recording, latency and fault injection.

The doubles are real servers (not mocks of `requests`) so that the code under test exercises its
real transport: connection pools, keep-alive, timeouts and connection resets all behave as they
would against the vendor.

Where the rest lives: the wire (server.py), requests and responses (messages.py), faults and
latency (faults.py), the request log (recording.py), credentials (auth.py).
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
import traceback
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TypeVar

from sandbox.doubles.auth import basic_auth, bearer_token
from sandbox.doubles.faults import (
    DEFAULT_FAULT_KINDS,
    FAULT_KINDS,
    RATE_LIMITED,
    FaultInjection,
)
from sandbox.doubles.messages import (
    Handler,
    Headers,
    Request,
    Response,
    html_response,
    json_response,
)
from sandbox.doubles.recording import RecordedRequest, RequestRecording
from sandbox.doubles.server import DoubleServer

# The names importers have always found here, whichever module now defines them.
__all__ = [
    "DEFAULT_FAULT_KINDS",
    "FAULT_KINDS",
    "RATE_LIMITED",
    "Double",
    "Handler",
    "Headers",
    "RecordedRequest",
    "Request",
    "Response",
    "basic_auth",
    "bearer_token",
    "html_response",
    "json_response",
]

_D = TypeVar("_D", bound="Double")


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Double(FaultInjection, RequestRecording):
    """Base class of the vendor doubles. Subclasses call `route()` in their constructor and
    override the `*_response` hooks to answer errors in their vendor's style.

    Faults and latency come from `FaultInjection`, the request log from `RequestRecording`."""

    #: Headers on every answer, as the vendor's application and CDN add them: a client
    #: parses twenty-odd headers per answer in production, not the four of a bare server.
    EDGE_HEADERS: tuple[tuple[str, str], ...] = ()

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        # One lock for fault configuration, the RNG, the request log and the open connections:
        # the handler threads and the test thread all touch them.
        self._lock = threading.Lock()
        super().__init__()
        self.host = host
        self._port = port
        self._routes: list[_Route] = []
        self._server: DoubleServer | None = None
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
        server = DoubleServer((self.host, self._port), self)
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

    # ----------------------------------------------------------------- recording

    def reset_requests(self) -> None:
        """Forget the recorded requests and the rate limit's refusal count."""
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
