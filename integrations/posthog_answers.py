"""What PostHog's answers say: a recording, the person it belongs to, and its embed link.

Values only, read from the JSON of ``GET session_recordings/{id}`` and ``GET persons/``;
``integrations.posthog`` makes the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from integrations.errors import RetryLater

SYSTEM = "PostHog"


def embed_link(host: str, access_token: str, replay_seconds: int | None = None) -> str:
    """The iframe-able public page of a shared recording."""
    link = f"{host.rstrip('/')}/embedded/{quote(access_token, safe='')}"
    if replay_seconds:
        link += "?" + urlencode({"t": replay_seconds})
    return link


#: PostHog lists at most this many of a person's distinct ids in a recording's answer.
PERSON_DISTINCT_IDS_SHOWN = 10


@dataclass(frozen=True)
class Person:
    """A PostHog person: who a recording, or a distinct id, belongs to."""

    #: PostHog's uuid of the person (None when the answer carried none).
    id: str | None
    #: The ``email`` person property, where the app identified the user with one.
    email: str | None
    distinct_ids: frozenset[str]
    #: False when the answer may have left some distinct ids out (a recording's
    #: answer lists only the first ten): ask ``PostHogSharing.find_person`` before
    #: concluding that an id is not this person's.
    complete: bool = True


def person_of(body: Any, *, complete: bool) -> Person | None:
    if not isinstance(body, dict):
        return None
    ids = body.get("distinct_ids")
    listed = ids if isinstance(ids, list) else []
    distinct_ids = frozenset(i for i in listed if isinstance(i, str))
    properties = body.get("properties")
    email = properties.get("email") if isinstance(properties, dict) else None
    uuid = body.get("uuid") if isinstance(body.get("uuid"), str) else None
    return Person(
        id=uuid,
        email=email.strip() if isinstance(email, str) and email.strip() else None,
        distinct_ids=distinct_ids,
        complete=complete or len(distinct_ids) < PERSON_DISTINCT_IDS_SHOWN,
    )


@dataclass(frozen=True)
class Recording:
    """What PostHog knows of one session's recording."""

    session_id: str
    start_time: datetime | None
    duration_seconds: int | None
    #: Still being recorded: the user's session had not ended when it was read.
    ongoing: bool
    #: The distinct id it was captured with, and the distinct ids of its person that
    #: the answer lists (at most ``PERSON_DISTINCT_IDS_SHOWN``).
    distinct_ids: frozenset[str]
    #: The recording's person, when it has one.
    person: Person | None = None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def recording_of(session_id: str, body: Any) -> Recording:
    if not isinstance(body, dict):
        raise RetryLater(SYSTEM, f"PostHog's answer for the recording of {session_id} is not JSON")
    ids = {body["distinct_id"]} if isinstance(body.get("distinct_id"), str) else set()
    person = person_of(body.get("person"), complete=False)
    if person is not None:
        ids.update(person.distinct_ids)
    duration = body.get("recording_duration")
    return Recording(
        session_id=session_id,
        start_time=_time(body.get("start_time")),
        duration_seconds=int(duration) if isinstance(duration, (int, float)) else None,
        ongoing=body.get("ongoing") is True,
        distinct_ids=frozenset(ids),
        person=person,
    )


def token_of(link: str) -> str:
    """The access token in an embed link made by ``embed_link``."""
    return unquote(urlsplit(link).path.rstrip("/").rpartition("/")[2])
