"""Where a link opens and whose recording it is, decided without any server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from integrations.posthog_answers import Person, Recording
from worker.attach.events import parse_event
from worker.attach.recording import (
    RecordingFacts,
    StartPoint,
    belongs_to_reporter,
    minutes_seconds,
    start_point,
)

START = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def facts(duration: int | None = 300, ongoing: bool = False) -> RecordingFacts:
    return RecordingFacts(START, duration, ongoing)


def reported(seconds: float, **fields: object) -> object:
    at = (START + timedelta(seconds=seconds)).isoformat()
    return parse_event({"session_id": "s", "zendesk_ticket": 1, "reported_at": at, **fields})


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (155, StartPoint(155, "reported")),
        (0.4, None),  # at its very start: nothing to say
        (-59, None),  # clamped to the start
        (-61, None),
        (330, StartPoint(300, "reported")),  # within a minute of the end: the end
        (361, None),  # further: outside, the start
    ],
)
def test_the_report_time_within_the_recording_clamped_by_a_minute(
    seconds: float, expected: StartPoint | None
) -> None:
    assert start_point(reported(seconds), facts()) == expected  # type: ignore[arg-type]


def test_an_ongoing_recording_has_no_end_yet() -> None:
    assert start_point(reported(900), facts(duration=60, ongoing=True)) == StartPoint(  # type: ignore[arg-type]
        900, "reported"
    )


def test_given_seconds_win_and_nothing_without_a_time_or_start() -> None:
    given = reported(155, replay_seconds=40)
    assert start_point(given, facts()) == StartPoint(40, "given")  # type: ignore[arg-type]
    plain = parse_event({"session_id": "s", "zendesk_ticket": 1})
    assert start_point(plain, facts()) is None
    assert start_point(reported(10), None) is None  # type: ignore[arg-type]
    assert start_point(reported(10), RecordingFacts(None, 300, False)) is None  # type: ignore[arg-type]


def test_the_recording_must_carry_the_reporters_distinct_id() -> None:
    recording = Recording("s", START, 300, False, frozenset({"anon-1", "alice@example.com"}))
    event = parse_event({"session_id": "s", "zendesk_ticket": 1})
    asked: list[str] = []

    def nobody(distinct_id: str) -> Person | None:
        asked.append(distinct_id)
        return None

    assert belongs_to_reporter(event, recording, nobody)  # no one named: nothing to check
    for mine in ("anon-1", "alice@example.com"):
        named = event.model_copy(update={"distinct_id": mine})
        assert belongs_to_reporter(named, recording, nobody)
    assert not belongs_to_reporter(
        event.model_copy(update={"distinct_id": "bob"}), recording, nobody
    )
    assert asked == []  # a person listed whole (or none) is never looked up


def test_a_reporter_beyond_the_ten_ids_listed_is_looked_up() -> None:
    ten = frozenset(f"device-{n}" for n in range(10))
    person = Person(id="p-1", email=None, distinct_ids=ten, complete=False)
    recording = Recording("s", START, 300, False, ten, person)
    event = parse_event({"session_id": "s", "zendesk_ticket": 1, "distinct_id": "device-10"})
    same = Person(id="p-1", email=None, distinct_ids=ten | {"device-10"})
    other = Person(id="p-2", email=None, distinct_ids=frozenset({"device-10"}))
    assert belongs_to_reporter(event, recording, lambda _: same)
    assert not belongs_to_reporter(event, recording, lambda _: other)
    assert not belongs_to_reporter(event, recording, lambda _: None)


def test_facts_survive_the_ledger_and_times_read_as_a_player_shows_them() -> None:
    original = facts(duration=187, ongoing=True)
    assert RecordingFacts.from_ledger(original.to_ledger()) == original
    assert (
        RecordingFacts.from_ledger("not json") is None and RecordingFacts.from_ledger(None) is None
    )
    assert [minutes_seconds(s) for s in (0, 65, 155, 3725)] == ["0:00", "1:05", "2:35", "1:02:05"]
