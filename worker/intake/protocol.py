"""What a request may cost before the application sees it: uvicorn's httptools protocol,
with a deadline on its arrival and a bound on its headers.

uvicorn closes a connection left idle after an answer (``timeout_keep_alive``),
but nothing limits the time a request takes to arrive: a connection that never
completes its headers, or sends its body a byte at a time, stays open for ever
(``limit_concurrency`` counts such connections too, so it would turn genuine
deliveries away while they are held). Here a request must arrive whole,
headers and body, within the read deadline, counted from the connection's
opening for its first request and from its first byte for the next ones. A
late request is answered 408 and its connection closed.

httptools, unlike h11 (16 KiB), takes headers of any size: they are bounded
here at ``MAX_HEADER_BYTES``, answered 431. Each closing is one log line, and
so is a client leaving in the middle of its request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from worker.metrics import INTAKE_CLOSED

log = logging.getLogger(__name__)

#: The key of the application's lifespan state that holds its read deadline in seconds
#: (each server process reads its own configuration, so the application tells its protocol).
READ_DEADLINE_STATE = "replay_attach_read_deadline_seconds"
#: The deadline of an application that sets none.
DEFAULT_READ_DEADLINE_SECONDS = 10.0
#: The most a request's line and headers may take (the senders' are a few KiB).
MAX_HEADER_BYTES = 32 * 1024


def _closing_answer(status_line: str, error: str) -> bytes:
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_LATE_ANSWER = _closing_answer("408 Request Timeout", "the request did not arrive in time")
_HEADERS_TOO_LARGE_ANSWER = _closing_answer(
    "431 Request Header Fields Too Large",
    f"the request line and headers are larger than {MAX_HEADER_BYTES // 1024} KiB",
)


class IntakeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request arrives too slowly
    or with too many header bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        #: A request has begun (its first byte came) and has not arrived whole.
        self._arriving = False
        self._headers_done = False
        self._header_bytes = 0
        self._closed_by_us = False

    # --------------------------------------------------------------- the bounds

    def _arm(self) -> None:
        seconds = float(self.app_state.get(READ_DEADLINE_STATE, DEFAULT_READ_DEADLINE_SECONDS))
        self._timer = self.loop.call_later(seconds, self._late, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _late(self, seconds: float) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if not self._arriving:
            # A connection opened and never used: closed without a word, as uvicorn
            # closes an idle keep-alive connection.
            self.transport.close()
            return
        self._closed_by_us = True
        INTAKE_CLOSED.labels("read_deadline").inc()
        log.info(
            "%s: closed, the request did not arrive whole within %g s (%s)",
            self._request_name(),
            seconds,
            "body incomplete" if self._headers_done else "headers incomplete",
        )
        cycle = self.cycle if self._headers_done else None
        if cycle is None or not cycle.response_started:
            self.transport.write(_LATE_ANSWER)
        if cycle is not None and not cycle.response_complete:
            # The application reading the body is told the client is gone, and its
            # answer goes nowhere: this connection has had its answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _request_name(self) -> str:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        if self._headers_done:
            return f"{self.scope['method']} {self.scope['path']} from {client}"
        return f"a request from {client}"

    def _refuse_headers(self) -> None:
        self._closed_by_us = True
        self._disarm()
        INTAKE_CLOSED.labels("headers_too_large").inc()
        log.info(
            "%s: closed, its headers are larger than %d KiB",
            self._request_name(),
            MAX_HEADER_BYTES // 1024,
        )
        self.transport.write(_HEADERS_TOO_LARGE_ANSWER)
        self.transport.close()

    # --------------------------------------------------------------- uvicorn's hooks

    def data_received(self, data: bytes) -> None:
        if self._closed_by_us:
            return
        super().data_received(data)
        # Counted once fed: a read that completes the headers may carry a large body too,
        # but one that leaves them incomplete is all header bytes.
        if self._arriving and not self._headers_done:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._refuse_headers()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arriving, self._headers_done, self._header_bytes = True, False, 0
        if self._timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._arriving = False
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._arriving and not self._closed_by_us:
            INTAKE_CLOSED.labels("client_left").inc()
            log.info("%s: the client left before its request arrived whole", self._request_name())
        super().connection_lost(exc)
