"""What a route handler receives and returns: `Request`, `Response` and their headers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


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


Handler = Callable[[Request], Response]


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, json=obj, headers=dict(headers or {}))


def html_response(status: int, text: str) -> Response:
    return Response(status=status, body=text.encode(), content_type="text/html; charset=utf-8")
