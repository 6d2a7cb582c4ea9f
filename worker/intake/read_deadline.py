"""A deadline on each request's arrival, for uvicorn's httptools protocol.

uvicorn closes a connection left idle after an answer (``timeout_keep_alive``),
but nothing limits the time a request takes to arrive: a connection that never
completes its headers, or sends its body a byte at a time, stays open for ever
(h11's and httptools' limits are on sizes, not time, and ``limit_concurrency``
counts such connections too, so it would turn genuine deliveries away while
they are held). Here a request must arrive whole, headers and body, within the
read deadline, counted from the connection's opening for its first request
and from its first byte for the next ones. A late request is answered 408 and
its connection closed; one log line says so, and one says when a client leaves
in the middle of its request.
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

_LATE_BODY = json.dumps({"error": "the request did not arrive in time"}).encode()
_LATE_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_LATE_BODY)).encode() + b"\r\nconnection: close\r\n\r\n"
) + _LATE_BODY


class ReadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request arrives too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        #: A request has begun (its first byte came) and has not arrived whole.
        self._arriving = False
        self._headers_done = False
        self._closed_late = False

    # --------------------------------------------------------------- the deadline

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
        self._closed_late = True
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

    # --------------------------------------------------------------- uvicorn's hooks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arriving, self._headers_done = True, False
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
        if self._arriving and not self._closed_late:
            INTAKE_CLOSED.labels("client_left").inc()
            log.info("%s: the client left before its request arrived whole", self._request_name())
        super().connection_lost(exc)
