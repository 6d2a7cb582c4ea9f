"""What the use case concludes from a session's recording: whose it is, and where to start it.

The facts are kept in the ledger with the link (``RecordingFacts.to_ledger``),
so that an attempt that resumes after the link was minted renders the same
note without reading the recording again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from integrations.posthog_answers import Person, Recording
from worker.attach.events import BugReport

#: A report time at most this far outside the recording still opens it at its start or
#: end: the browser's clock and PostHog's differ, and the report is often sent as the
#: page closes.
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class RecordingFacts:
    """What the note tells the agent about the recording."""

    start_time: datetime | None
    duration_seconds: int | None
    ongoing: bool

    @classmethod
    def of(cls, recording: Recording) -> RecordingFacts:
        return cls(recording.start_time, recording.duration_seconds, recording.ongoing)

    def to_ledger(self) -> str:
        return json.dumps(
            {
                "start_time": self.start_time.isoformat() if self.start_time else None,
                "duration_seconds": self.duration_seconds,
                "ongoing": self.ongoing,
            }
        )

    @classmethod
    def from_ledger(cls, text: str | None) -> RecordingFacts | None:
        """The facts a ledger record holds (None for a record older than them)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            start = data.get("start_time")
            return cls(
                datetime.fromisoformat(start) if start else None,
                data.get("duration_seconds"),
                bool(data.get("ongoing")),
            )
        except (ValueError, TypeError, AttributeError):
            return None


@dataclass(frozen=True)
class StartPoint:
    """Where the link opens the replay, and why there."""

    seconds: int
    #: "given": the event's replay_seconds; "reported": computed from its reported_at.
    source: Literal["given", "reported"]


def start_point(event: BugReport, facts: RecordingFacts | None) -> StartPoint | None:
    """The event's ``replay_seconds``, else the moment of ``reported_at`` in the recording.

    A report time within ``CLOCK_SKEW_SECONDS`` outside the recording is clamped to
    it; one further away, or at its very start, opens the replay at its start (None).
    """
    if event.replay_seconds is not None:
        return StartPoint(event.replay_seconds, "given")
    if event.reported_at is None or facts is None or facts.start_time is None:
        return None
    offset = (event.reported_at - facts.start_time).total_seconds()
    # An ongoing recording's length is only what has arrived so far.
    end = None if facts.ongoing else facts.duration_seconds
    if offset < -CLOCK_SKEW_SECONDS or (end is not None and offset > end + CLOCK_SKEW_SECONDS):
        return None
    seconds = int(max(0.0, offset if end is None else min(offset, float(end))))
    return StartPoint(seconds, "reported") if seconds > 0 else None


def belongs_to_reporter(
    event: BugReport, recording: Recording, find_person: Callable[[str], Person | None]
) -> bool:
    """Whether the recording is the reporter's (always, when the event names no one).

    PostHog lists only the first ten of a person's distinct ids with a recording:
    an id not among them is looked up (``find_person``) before it is refused.
    """
    if event.distinct_id is None or event.distinct_id in recording.distinct_ids:
        return True
    person = recording.person
    if person is None or person.complete or person.id is None:
        return False
    found = find_person(event.distinct_id)
    return found is not None and found.id == person.id


def minutes_seconds(seconds: int) -> str:
    """``155`` as ``2:35``, ``3725`` as ``1:02:05``: as a replay player shows time."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
