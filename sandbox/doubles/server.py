"""The HTTP/1.1 plumbing under every double: a threading server on 127.0.0.1 that turns bytes
into a `Request`, acts out the fault the double picked, and writes the `Response` back.

It knows a double only through `ServedDouble`, so this module does not import base.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from sandbox.doubles.faults import RATE_LIMITED
from sandbox.doubles.messages import Headers, Request, Response
from sandbox.doubles.recording import RecordedRequest


class ServedDouble(Protocol):
    """What the server needs from the double it serves (`Double` provides all of it)."""

    EDGE_HEADERS: tuple[tuple[str, str], ...]
    latency: float
    slow_seconds: float

    def _decide_fault(self, method: str, path: str) -> str | None: ...

    def _record(self, record: RecordedRequest) -> None: ...

    def _dispatch(self, request: Request) -> Response: ...

    def _sleep(self, seconds: float) -> None: ...

    def _sleep_until(self, deadline: float) -> None: ...

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None: ...

    def throttled_response(self) -> Response: ...

    def unavailable_response(self) -> Response: ...

    def redirect_response(self, request: Request) -> Response: ...

    def internal_error_response(self) -> Response: ...


class DoubleServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # Load tests open many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], double: ServedDouble) -> None:
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
    # several, and Nagle + delayed ACK would hold back any answer split in two.
    disable_nagle_algorithm = True
    server: DoubleServer
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
