"""What a double remembers of its traffic: every request, whatever happened to it afterwards."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from sandbox.doubles.messages import Headers


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


class RequestRecording:
    """The request log of a `Double`, which mixes this class in.

    `_lock` is the double's one lock (set by `Double` before this initialiser runs): handler
    threads append while the test thread reads.
    """

    _lock: threading.Lock

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        # Tracebacks of route handlers that raised (a bug in the double, not a vendor answer).
        self.handler_errors: list[str] = []

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
