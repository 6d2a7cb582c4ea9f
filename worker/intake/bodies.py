"""A delivery's headers and body: read within a size limit, checked as JSON, parsed.

What every door does before its sender's own reading: the body is refused with 413
as soon as it passes the door's limit, with 415 when it is not sent as JSON, and
with 400 (``InvalidEvent``) when it does not parse.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from worker.attach.events import InvalidEvent
from worker.intake.refusals import BODIES_BUSY, Refused

#: The largest body of one event or one webhook.
MAX_EVENT_BYTES = 64 * 1024
#: The largest body of a list of events, and of a Jira webhook (Jira sends the whole issue).
MAX_BATCH_BYTES = 1024 * 1024

#: A JSON integer longer than this is no id or offset of ours: it is kept as
#: ``TooLongNumber``, which every field refuses by name (``json.loads`` would raise a
#: bare ValueError past Python's 4,300-digit conversion limit).
MAX_JSON_INT_DIGITS = 40

#: A request's headers by lower-case name (the first of repeated ones, as Starlette's ``get``).
RequestHeaders = dict[str, str]


def request_headers(request: Request) -> RequestHeaders:
    """The headers once, as a dict: each door looks up several, some of them absent."""
    headers: RequestHeaders = {}
    for name, value in request.scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def read_body(
    request: Request, headers: RequestHeaders, limit: int, slots: asyncio.Semaphore
) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes.

    A body that takes more than one read holds one of ``slots`` until it is
    complete (it is kept in memory meanwhile); when none is free it is refused
    with 503 at once. A body that arrives whole needs none, so slow senders
    holding every slot do not hold up deliveries that arrive promptly.
    Raises ``ClientDisconnect`` when the client leaves (or the read deadline
    closes the connection) before the body is complete.
    """
    declared = headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        raise Refused(413, f"the body is larger than {limit // 1024} KiB")
    chunks, size, holding = [], 0, False
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"the body is larger than {limit // 1024} KiB")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
            if not holding:
                if slots.locked():
                    raise BODIES_BUSY
                await slots.acquire()
                holding = True
    finally:
        if holding:
            slots.release()


def require_json(headers: RequestHeaders) -> None:
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise Refused(415, "send the body as Content-Type: application/json")


class TooLongNumber:
    """A JSON integer of more than ``MAX_JSON_INT_DIGITS`` digits, left unconverted."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def _json_int(text: str) -> int | TooLongNumber:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        return TooLongNumber(len(text))
    return int(text)


def parse_json(body: bytes) -> Any:
    """The body as JSON; raise ``InvalidEvent`` naming what is wrong."""
    try:
        # Decoded here: json.loads would guess UTF-16 or UTF-32 from the first bytes.
        return json.loads(body.decode("utf-8"), parse_int=_json_int)
    except UnicodeDecodeError:
        raise InvalidEvent("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidEvent(f"not valid JSON ({exc.msg} at {where})") from None
    except RecursionError:
        raise InvalidEvent("the JSON is nested too deeply") from None
