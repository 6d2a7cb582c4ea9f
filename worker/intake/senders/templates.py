"""What the senders' templates render, read the same way by every door.

The doors take the event contract of ``worker.attach.events`` as it is, with
what the senders' templates need on top: placeholders render as strings (so
numeric strings are ids), an empty placeholder means "not given", and a
session may be given as the PostHog replay URL an agent pasted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.attach.events import BugReport, InvalidEvent, parse_event
from worker.intake.sender import Ignored

#: Fields the webhook doors take as numbers, from the strings templates render.
_NUMERIC_FIELDS = ("zendesk_ticket", "replay_seconds")

#: A rendered number: ASCII digits only (``str.isdigit`` also takes "²" and "①", which
#: ``int`` refuses), and no longer than any id or offset can be.
_DIGITS = re.compile(r"[0-9]{1,19}")

#: The path of a replay in PostHog's app, with or without the project: its id, or the public
#: project token (``phc_...``) that posthog-js's ``get_session_replay_url()`` puts there.
_REPLAY_PATH = re.compile(
    r"^/(?:project/(?:\d+|phc_[A-Za-z0-9_-]{1,100})/)?replay/([A-Za-z0-9_-]{1,200})/?$"
)


def _replay_url(value: Any, posthog_host: str) -> tuple[Any, int | None]:
    """(session id, its ``?t=`` seconds) of a replay URL on ``posthog_host``; anything else
    is (unchanged, None)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return value, None
    parts, host = urlsplit(value.strip()), urlsplit(posthog_host)
    if (parts.scheme, parts.netloc.lower()) != (host.scheme, host.netloc.lower()):
        raise InvalidEvent(f"session_id: a URL, but not one of {posthog_host}")
    found = _REPLAY_PATH.match(parts.path)
    if found is None:
        raise InvalidEvent(
            "session_id: a PostHog URL, but not of a replay (expected "
            f"{posthog_host}/project/<id>/replay/<session id>)"
        )
    moment = parse_qs(parts.query).get("t", [""])[0]
    return found.group(1), int(moment) if _DIGITS.fullmatch(moment) else None


def session_in(event: dict[str, Any], posthog_host: str) -> dict[str, Any]:
    """``event`` with a replay URL in ``session_id`` read: the session, and its moment as
    ``replay_seconds`` unless the event gives one."""
    session, moment = _replay_url(event["session_id"], posthog_host)
    event["session_id"] = session
    if moment is not None and event.get("replay_seconds") is None:
        event["replay_seconds"] = moment
    return event


def from_template(data: Mapping[str, Any]) -> dict[str, Any]:
    """A templated event: empty placeholders dropped, numeric strings made numbers."""
    event = {key: value for key, value in data.items() if value not in ("", None)}
    for key in _NUMERIC_FIELDS:
        value = event.get(key)
        if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            event[key] = int(value)
    return event


def json_object(data: Any, what: str) -> Mapping[str, Any]:
    """``data`` when it is a JSON object; else ``InvalidEvent`` naming ``what``."""
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"{what} must be a JSON object, not {type(data).__name__}")
    return data


def with_session(event: dict[str, Any], posthog_host: str) -> BugReport | Ignored:
    """The event's bug report; ignored when its session placeholder rendered empty."""
    if "session_id" not in event:
        return Ignored("no session id in the delivery (the session field is empty)")
    return parse_event(session_in(event, posthog_host))
