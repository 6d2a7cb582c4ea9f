"""The recordings of the PostHog double: what `GET .../session_recordings/{id}` answers.

A `Recording` holds one session's metadata; `recording_json` renders it as PostHog's
`SessionRecordingSerializer` does (its person as `MinimalPersonSerializer`), with datetimes as
DRF writes them: `isoformat()` with `+00:00` turned into `Z`, so a time with zero microseconds
has no fraction at all, as on PostHog.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DEFAULT_DURATION_SECONDS = 187
#: The email of every recording's person unless told otherwise: the sandbox's one customer,
#: who is also the requester of its Zendesk tickets and the reporter of its Jira issues.
CUSTOMER_EMAIL = "customer@sandbox.test"
#: PostHog's recording answer lists at most this many of its person's distinct ids.
RECORDING_DISTINCT_IDS_SHOWN = 10


def drf_datetime(value: datetime) -> str:
    """A UTC datetime as DRF's DateTimeField renders it."""
    text = value.astimezone(timezone.utc).isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


@dataclass
class Recording:
    """One session's recording metadata, as PostHog would report it once ingested."""

    session_id: str
    start_time: datetime
    duration_seconds: int
    ongoing: bool
    # Empty: the recording has no person profile (`person` is null).
    distinct_ids: list[str]
    # The person's `email` property (None: an anonymous person, identified by no email).
    email: str | None
    # `time.monotonic()` from which GET finds it (PostHog's ingestion delay).
    visible_at: float
    person_created_at: datetime
    person_pk: int = field(init=False)
    person_uuid: str = field(init=False)

    def __post_init__(self) -> None:
        # One person per first distinct id: two recordings of a person share its ids.
        digest = hashlib.sha256((self.distinct_id or self.session_id).encode()).digest()
        self.person_pk = int.from_bytes(digest[:3], "big") + 1
        self.person_uuid = str(uuid.UUID(bytes=digest[:16], version=4))

    @property
    def end_time(self) -> datetime:
        # For an ongoing recording: the last event received so far.
        return self.start_time + timedelta(seconds=self.duration_seconds)

    @property
    def distinct_id(self) -> str:
        return self.distinct_ids[0] if self.distinct_ids else default_distinct_id(self.session_id)

    def visible(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.visible_at


def default_distinct_id(session_id: str) -> str:
    return f"user-{session_id[:8]}"


def new_recording(
    session_id: str,
    *,
    start_time: datetime | None,
    duration_seconds: int,
    ongoing: bool,
    distinct_ids: list[str] | None,
    appears_after: float,
    email: str | None = CUSTOMER_EMAIL,
) -> Recording:
    """A recording for `PostHogDouble.add_recording`, validated.

    `start_time` (timezone-aware) defaults to now minus `duration_seconds`; `end_time` is
    `start_time + duration_seconds`, for an ongoing recording too (its last event so far).
    `distinct_ids` defaults to `["user-{session_id[:8]}"]`: the first is the recording's
    `distinct_id`, all are its person's; an empty list means no person (`person: null`).
    `email` is the person's email property (None: none). GET finds it only `appears_after`
    seconds from now (PostHog's ingestion delay)."""
    if duration_seconds < 0:
        raise ValueError(f"duration_seconds must be >= 0, not {duration_seconds}")
    if appears_after < 0:
        raise ValueError(f"appears_after must be >= 0, not {appears_after}")
    now = datetime.now(timezone.utc)
    if start_time is None:
        start_time = now - timedelta(seconds=duration_seconds)
    elif start_time.tzinfo is None or start_time.utcoffset() is None:
        raise ValueError("start_time must be timezone-aware (PostHog reports UTC)")
    start = start_time.astimezone(timezone.utc)
    ids = [default_distinct_id(session_id)] if distinct_ids is None else list(distinct_ids)
    return Recording(
        session_id=session_id,
        start_time=start,
        duration_seconds=int(duration_seconds),
        ongoing=ongoing,
        distinct_ids=ids,
        email=email,
        visible_at=time.monotonic() + appears_after,
        person_created_at=min(start, now) - timedelta(days=3, hours=4, minutes=17),
    )


class RecordingStore:
    """The recordings of one double, and the sessions removed from it.

    Not locked: `PostHogDouble` calls it under its `_state` lock."""

    def __init__(self) -> None:
        self._recordings: dict[str, Recording] = {}
        # People known without a recording of theirs (`PostHogDouble.add_person`), by first id.
        self._persons: dict[str, Recording] = {}
        # Sessions without a recording even when every session is assumed to have one.
        self._removed: set[str] = set()

    def add(self, recording: Recording) -> None:
        self._removed.discard(recording.session_id)
        self._recordings[recording.session_id] = recording

    def remove(self, session_id: str) -> None:
        self._recordings.pop(session_id, None)
        self._removed.add(session_id)

    def session_ids(self) -> frozenset[str]:
        return frozenset(self._recordings)

    def find(self, session_id: str, *, synthesize: bool) -> Recording | None:
        """The visible recording of `session_id`, if any; with `synthesize`, an unknown session
        not removed gets one with the defaults, kept so its start_time stays the same."""
        recording = self._recordings.get(session_id)
        if recording is None and synthesize and session_id not in self._removed:
            recording = self._recordings[session_id] = new_recording(
                session_id,
                start_time=None,
                duration_seconds=DEFAULT_DURATION_SECONDS,
                ongoing=False,
                distinct_ids=None,
                appears_after=0.0,
            )
        # Not ingested yet: PostHog cannot tell it from a session that never existed.
        return recording if recording is not None and recording.visible() else None

    def add_person(self, person: Recording) -> None:
        self._persons[person.distinct_ids[0]] = person

    def person_of(self, distinct_id: str) -> Recording | None:
        """The person (as one of its recordings) with ``distinct_id`` among its ids, if any."""
        for recording in (*self._persons.values(), *self._recordings.values()):
            if distinct_id in recording.distinct_ids:
                return recording
        return None

    def summaries(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [recording_summary(r, now) for r in self._recordings.values()]


def recording_json(recording: Recording) -> dict[str, Any]:
    """The body of a 200 from `GET /api/projects/{pid}/session_recordings/{id}`."""
    duration = recording.duration_seconds
    active = duration * 2 // 3
    start_url = "https://app.example.com/checkout"
    person: dict[str, Any] | None = None
    if recording.distinct_ids:
        person = person_json(recording)
        # MinimalPersonSerializer lists only the first ten of the person's ids.
        person["distinct_ids"] = person["distinct_ids"][:RECORDING_DISTINCT_IDS_SHOWN]
    return {
        "id": recording.session_id,
        "distinct_id": recording.distinct_id,
        "viewed": False,
        "viewers": [],
        "recording_duration": duration,
        "active_seconds": active,
        "inactive_seconds": duration - active,
        "start_time": drf_datetime(recording.start_time),
        "end_time": drf_datetime(recording.end_time),
        "click_count": 14,
        "keypress_count": 32,
        "mouse_activity_count": 96,
        "console_log_count": 11,
        "console_warn_count": 3,
        "console_error_count": 2,
        "start_url": start_url,
        "person": person,
        "storage": "object_storage",
        "snapshot_source": "web",
        "ongoing": recording.ongoing,
    }


def person_json(recording: Recording) -> dict[str, Any]:
    """The recording's person as PostHog's person serializers render it, every id listed."""
    properties: dict[str, Any] = {
        "$os": "Mac OS X",
        "$browser": "Chrome",
        "$initial_current_url": "https://app.example.com/checkout",
    }
    if recording.email:
        properties["email"] = recording.email
    return {
        "id": recording.person_pk,
        # PostHog names a person by its email property, else by its first distinct id.
        "name": recording.email or recording.distinct_ids[0],
        "distinct_ids": list(recording.distinct_ids),
        "properties": properties,
        "created_at": drf_datetime(recording.person_created_at),
        "uuid": recording.person_uuid,
    }


def recording_summary(recording: Recording, now: float) -> dict[str, Any]:
    """Plain data for the console."""
    return {
        "session_id": recording.session_id,
        "distinct_id": recording.distinct_id,
        "start_time": drf_datetime(recording.start_time),
        "end_time": drf_datetime(recording.end_time),
        "recording_duration": recording.duration_seconds,
        "ongoing": recording.ongoing,
        "visible": recording.visible(now),
    }
