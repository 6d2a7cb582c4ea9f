"""The event contract: what producers may send, and the errors for what they may not."""

from __future__ import annotations

import io

import pytest

from worker.attach.events import (
    BugReport,
    InvalidEvent,
    iter_event_lines,
    parse_event,
    parse_event_line,
)

UUID = "0192c0de-1234-7abc-8def-0123456789ab"


def test_valid_events() -> None:
    z = parse_event({"session_id": UUID, "zendesk_ticket": 123})
    assert z.target == "zendesk:123" and z.target_label == "Zendesk ticket 123"
    j = parse_event({"session_id": "a_b-C9", "jira_issue": "bug-42"})
    assert j.jira_issue == "BUG-42" and j.target == "jira:BUG-42"
    full = parse_event(
        {
            "session_id": UUID,
            "jira_issue": "WEB_2-7",
            "replay_seconds": 95,
            "reported_at": "2026-11-26T10:00:00Z",
            "page_url": "https://app.example.com/checkout",
            "description": "<b>Pay</b> does nothing",
        }
    )
    assert full.to_message()["replay_seconds"] == 95
    assert parse_event(full.to_message()) == full
    assert parse_event({"session_id": "x" * 200, "zendesk_ticket": 1}).session_id == "x" * 200


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"zendesk_ticket": 1}, "session_id: is required"),
        ({"session_id": "", "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": "a/b", "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": "a?b", "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": "a#b", "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": "a b", "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": "ab\n", "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": "x" * 201, "zendesk_ticket": 1}, "session_id: must be 1-200 letters"),
        ({"session_id": 12, "zendesk_ticket": 1}, "session_id: Input should be a valid string"),
        ({"session_id": "s"}, "exactly one of zendesk_ticket and jira_issue is required"),
        ({"session_id": "s", "zendesk_ticket": 1, "jira_issue": "A-1"}, "exactly one of"),
        ({"session_id": "s", "zendesk_ticket": 0}, "zendesk_ticket: must be a positive integer"),
        ({"session_id": "s", "zendesk_ticket": -3}, "zendesk_ticket: must be a positive integer"),
        ({"session_id": "s", "zendesk_ticket": "12"}, "zendesk_ticket: must be a positive integer"),
        ({"session_id": "s", "zendesk_ticket": True}, "zendesk_ticket: must be a positive integer"),
        ({"session_id": "s", "zendesk_ticket": 1.5}, "zendesk_ticket: must be a positive integer"),
        ({"session_id": "s", "jira_issue": "BUG"}, "jira_issue: must be a Jira issue key"),
        ({"session_id": "s", "jira_issue": "BUG-0"}, "jira_issue: must be a Jira issue key"),
        ({"session_id": "s", "jira_issue": "1BUG-3"}, "jira_issue: must be a Jira issue key"),
        ({"session_id": "s", "jira_issue": "BUG-3/../x"}, "jira_issue: must be a Jira issue key"),
        ({"session_id": "s", "zendesk_ticket": 1, "ticket": 2}, "ticket: is not a known field"),
        (
            {"session_id": "s", "zendesk_ticket": 1, "page_url": "javascript:alert(1)"},
            "page_url: must be an http(s) URL",
        ),
        (
            {"session_id": "s", "zendesk_ticket": 1, "reported_at": "2026-11-26T10:00:00"},
            "must include a time zone",
        ),
        (
            {"session_id": "s", "zendesk_ticket": 1, "description": "x" * 2001},
            "description: String should have at most 2000",
        ),
        (
            {"session_id": "s", "zendesk_ticket": 1, "replay_seconds": -1},
            "replay_seconds: Input should be greater than or equal to 0",
        ),
        # Odd values a Python producer can pass, which JSON cannot carry.
        ({"session_id": "s", "zendesk_ticket": 10**5000}, "zendesk_ticket: must be a positive"),
        (
            {"session_id": "s", "zendesk_ticket": 1, "replay_seconds": 10**5000},
            "replay_seconds: Input should be less than or equal to 604800",
        ),
        (
            {"session_id": "s", "zendesk_ticket": 1, "reported_at": 10**5000},
            "reported_at: Input should be a valid datetime",
        ),
        (
            {"session_id": "s", "zendesk_ticket": 1, "reported_at": float("nan")},
            "reported_at: Input should be a valid datetime",
        ),
        (
            {"session_id": "s", "zendesk_ticket": 1, "description": "\ud800"},
            "description: Input should be a valid string",
        ),
    ],
)
def test_invalid_events_name_the_problem(data: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(data)
    assert problem in str(caught.value)


def test_non_objects_and_bad_json() -> None:
    with pytest.raises(InvalidEvent, match="must be a JSON object, not list"):
        parse_event(["s", 1])
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_event_line('{"session_id": ')
    # json.loads refuses an integer past Python's digit limit with a plain ValueError.
    with pytest.raises(InvalidEvent, match="a number too long to read"):
        parse_event_line('{"session_id": "s", "zendesk_ticket": ' + "9" * 5000 + "}")


def test_a_line_that_is_not_utf8_names_its_line() -> None:
    good = '{"session_id": "s", "zendesk_ticket": 1}\n'
    # As ``enqueue --file`` reads it: bytes that are not UTF-8 become lone surrogates.
    bad = b'{"session_id": "s", "zendesk_ticket": 1, "description": "\xff"}\n'
    stream = io.StringIO(good + bad.decode("utf-8", "surrogateescape"))
    with pytest.raises(InvalidEvent, match=r"^line 2: not UTF-8 text$"):
        list(iter_event_lines(stream))


def test_lines_are_numbered_and_blank_lines_skipped() -> None:
    text = '{"session_id": "a", "zendesk_ticket": 1}\n\n{"session_id": "b", "jira_issue": "X-1"}\n'
    assert [(n, e.session_id) for n, e in iter_event_lines(io.StringIO(text))] == [
        (1, "a"),
        (3, "b"),
    ]
    bad = text + '{"session_id": "c/d", "zendesk_ticket": 2}\n'
    with pytest.raises(InvalidEvent, match=r"^line 4: session_id: must be"):
        list(iter_event_lines(io.StringIO(bad)))


def test_bug_report_is_immutable() -> None:
    event = parse_event({"session_id": "a", "zendesk_ticket": 1})
    assert isinstance(event, BugReport)
    with pytest.raises(Exception, match="frozen"):
        event.session_id = "b"  # type: ignore[misc]


def test_a_file_with_an_overlong_or_too_deeply_nested_line_names_that_line() -> None:
    good = '{"session_id": "s", "zendesk_ticket": 1}\n'
    deep = "[" * 5_000 + "]" * 5_000 + "\n"
    with pytest.raises(
        InvalidEvent, match=r"^line 2: not an event: its JSON is nested too deeply$"
    ):
        list(iter_event_lines(io.StringIO(good + deep)))
    huge = '{"description": "' + "x" * (64 * 1024) + '"}\n'
    with pytest.raises(InvalidEvent, match=r"^line 3: longer than 65536 characters"):
        list(iter_event_lines(io.StringIO(good + good + huge + good)))
    # A line of exactly the limit, newline included, is read whole.
    padded = '{"session_id": "s", "zendesk_ticket": 1}' + " " * (64 * 1024 - 41) + "\n"
    assert len(padded) == 64 * 1024
    assert [n for n, _ in iter_event_lines(io.StringIO(padded + good))] == [1, 2]
