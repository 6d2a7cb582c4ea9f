"""The rules of a Zendesk ticket's fields, as Zendesk applies them: its statuses, tags that are
lower-case words (and a `tags` update that replaces them all), custom fields stored as text, and
an `updated_at` that moves on with every update. No state of their own: the double keeps the
tickets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.doubles import zendesk_answers as answers

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
#: The sandbox's customer: every ticket's requester unless told otherwise.
REQUESTER_ID = 2


def normalize_tags(tags: Any) -> list[str] | None:
    """Zendesk tags are lower-case and cannot contain spaces ("a b" becomes two tags)."""
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None
    out: list[str] = []
    for tag in tags:
        for part in tag.lower().split():
            if part not in out:
                out.append(part)
    return out


def custom_field_list(fields: Any) -> list[dict[str, Any]] | None:
    """A request's `custom_fields` ([{"id": N, "value": ...}]) as stored; None if malformed.

    Values are kept as text, as a text field stores them; a null value stays null."""
    if not isinstance(fields, list):
        return None
    out: list[dict[str, Any]] = []
    for field in fields:
        if not isinstance(field, dict) or not isinstance(field.get("id"), int):
            return None
        value = field.get("value")
        out.append({"id": field["id"], "value": None if value is None else str(value)})
    return out


def merge_tags(current: list[str], given: list[str], mode: str) -> list[str]:
    """A ticket's tags after an update: "set" replaces them, "add" appends the new ones, "rm"
    takes the given ones out."""
    if mode == "set":
        return list(given)
    if mode == "add":
        return current + [t for t in given if t not in current]
    return [t for t in current if t not in given]


def touch(ticket: dict[str, Any]) -> datetime:
    # updated_at must change on every update, even within one second, or a stale
    # `updated_stamp` could pass the safe_update check.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    previous = datetime.strptime(ticket["updated_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    now = max(now, previous + timedelta(seconds=1))
    ticket["updated_at"] = answers.stamp(now)
    return now
