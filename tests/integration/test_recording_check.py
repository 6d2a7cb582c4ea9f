"""The recording is read before it is shared: late ones waited for, missing ones said so,
another person's never shared, and the link opening at the moment of the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.scenarios import embed_token, jira_issue, notes_on, wait_for
from worker.app import App
from worker.attach.events import InvalidEvent
from worker.jobs.producer import enqueue_bug_report

RECORDING = r"/session_recordings/[^/]+/?$"
MISSING_NOTE = "PostHog has no recording of session"


def shares(box: Sandbox) -> int:
    return len(box.posthog.calls("PATCH", r"/sharing/?$"))


def test_a_recording_that_appears_after_two_looks_gets_one_note_and_one_token(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.remove_recording("late-1")
    app = make_app(config_data(sandbox, posthog__recording_wait_minutes=1))
    enqueue_bug_report(session_id="late-1", zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        wait_for(lambda: len(sandbox.posthog.recording_reads("late-1")) >= 2, 10, "two looks")
        assert shares(sandbox) == 0 and notes_on(sandbox, 101) == []
        sandbox.posthog.add_recording("late-1")  # ingested at last
        worker.drain()
    (note,) = notes_on(sandbox, 101)
    token = embed_token(note["html_body"])
    assert sandbox.posthog.is_live(token) and sandbox.posthog.session_for(token) == "late-1"
    assert requests.get(f"{sandbox.posthog.url}/embedded/{token}", timeout=5).status_code == 200
    assert shares(sandbox) == 1
    assert [r.status for r in sandbox.posthog.recording_reads("late-1")][-1] == 200
    assert app.failed.all() == []


@pytest.mark.parametrize("target", ["zendesk", "jira"])
def test_a_recording_that_never_appears_gets_a_note_saying_so_and_nothing_is_shared(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    target: str,
) -> None:
    sandbox.posthog.remove_recording("never")
    app = make_app(config_data(sandbox, posthog__recording_wait_minutes=0.02))
    event: dict[str, Any] = (
        {"zendesk_ticket": 102} if target == "zendesk" else {"jira_issue": "BUG-2"}
    )
    enqueue_bug_report({"session_id": "never", **event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain(timeout=30)
    assert shares(sandbox) == 0
    assert len(sandbox.posthog.recording_reads("never")) >= 2  # looked again before concluding
    page = f"{sandbox.posthog.url}/project/1/replay/never"
    if target == "zendesk":
        (note,) = notes_on(sandbox, 102)
        assert note["public"] is False and f"{MISSING_NOTE} never" in note["body"]
        assert "/embedded/" not in note["html_body"] and page in note["html_body"]
        assert "posthog_replay_missing" in sandbox.zendesk.tickets[102]["tags"]
        assert "posthog_replay" not in sandbox.zendesk.tickets[102]["tags"]
    else:
        issue = jira_issue(sandbox, "BUG-2")
        (comment,) = issue["comments"]
        assert MISSING_NOTE in json.dumps(comment["body"]) and issue["remote_links"] == []
    assert app.failed.all() == []


def test_on_missing_recording_fail_makes_a_failed_job_and_tags_the_ticket(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.remove_recording("never")
    app = make_app(
        config_data(
            sandbox, posthog__recording_wait_minutes=0, posthog__on_missing_recording="fail"
        )
    )
    enqueue_bug_report(session_id="never", zendesk_ticket=103, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.reason.startswith("PostHog has no recording of session never")
    assert shares(sandbox) == 0 and notes_on(sandbox, 103) == []
    assert "posthog_replay_failed" in sandbox.zendesk.tickets[103]["tags"]


@pytest.mark.parametrize("fault", ["5xx", "429"])
def test_a_failing_read_is_retried_like_any_read(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    fault: str,
) -> None:
    app = make_app(config_data(sandbox))
    sandbox.posthog.throttle_seconds = 0
    sandbox.posthog.fail_next(fault, count=4, method="GET", path_regex=RECORDING)
    enqueue_bug_report(session_id="flaky-read", zendesk_ticket=104, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    statuses = [r.status for r in sandbox.posthog.recording_reads("flaky-read")]
    assert statuses[:4] == ([503] * 4 if fault == "5xx" else [429] * 4) and statuses[-1] == 200
    assert len(notes_on(sandbox, 104)) == 1 and shares(sandbox) == 1
    assert app.failed.all() == []


def test_another_persons_recording_is_never_shared(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.add_recording("alice-s", distinct_ids=["anon-01", "alice@example.com"])
    app = make_app(config_data(sandbox))
    enqueue_bug_report(
        session_id="alice-s", zendesk_ticket=105, distinct_id="mallory", queue=app.queue
    )
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.reason.startswith("session alice-s was recorded for another person")
    assert job.attempts == 1
    assert shares(sandbox) == 0 and notes_on(sandbox, 105) == []
    assert "posthog_replay_failed" in sandbox.zendesk.tickets[105]["tags"]


def test_the_reporters_own_recording_is_shared_whichever_of_their_ids_is_given(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    # Before identify() the browser's id is anonymous; after, the person has both.
    sandbox.posthog.add_recording("alice-s", distinct_ids=["anon-01", "alice@example.com"])
    app = make_app(config_data(sandbox))
    enqueue_bug_report(
        session_id="alice-s", zendesk_ticket=105, distinct_id="alice@example.com", queue=app.queue
    )
    with run_worker(app) as worker:
        worker.drain()
    assert len(notes_on(sandbox, 105)) == 1 and app.failed.all() == []


def test_require_distinct_id_refuses_events_without_one_at_every_way_in(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, posthog__require_distinct_id=True))
    queue = app.queue
    assert queue.require_distinct_id
    with pytest.raises(InvalidEvent, match="distinct_id: is required"):
        enqueue_bug_report(session_id="s-1", zendesk_ticket=101, queue=queue)
    assert app.broker.do_qsize(queue.queue_name) == 0
    # A message written without the check (an older producer) fails in the worker.
    queue.requeue({"session_id": "s-2", "zendesk_ticket": 101}, "job-without-distinct-id")
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert "distinct_id: is required" in job.reason and shares(sandbox) == 0


def _reported(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).isoformat()


@pytest.mark.parametrize(
    ("reported_after", "given", "expected_t", "says"),
    [
        (155, None, 155, "2:35, when the report was sent"),
        (-30, None, None, None),  # 30 s before the recording started: its start, no ?t=
        (330, None, 300, "5:00, when the report was sent"),  # 30 s after its end: the end
        (400, None, None, None),  # well outside: no ?t=
        (155, 40, 40, "0:40, as given with the report"),  # replay_seconds wins
    ],
)
def test_the_link_opens_at_the_moment_of_the_report(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    reported_after: float,
    given: int | None,
    expected_t: int | None,
    says: str | None,
) -> None:
    start = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    sandbox.posthog.add_recording("moment", start_time=start, duration_seconds=300)
    app = make_app(config_data(sandbox))
    event: dict[str, Any] = {
        "session_id": "moment",
        "zendesk_ticket": 101,
        "reported_at": _reported(start, reported_after),
    }
    if given is not None:
        event["replay_seconds"] = given
    enqueue_bug_report(event, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (note,) = notes_on(sandbox, 101)
    token = embed_token(note["html_body"])
    link = f"{sandbox.posthog.url}/embedded/{token}"
    if expected_t is None:
        assert f'href="{link}"' in note["html_body"] and "Opens at" not in note["plain_body"]
    else:
        assert f'href="{link}?t={expected_t}"' in note["html_body"]
        assert f"Opens at: {says}" in note["plain_body"]
    assert "Recording: 5:00 long, started 2026-11-30 09:00 UTC" in note["plain_body"]


def test_an_ongoing_recording_is_said_to_be_still_recording(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.add_recording("live-now", ongoing=True, duration_seconds=65)
    app = make_app(config_data(sandbox))
    enqueue_bug_report(session_id="live-now", jira_issue="BUG-3", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (comment,) = jira_issue(sandbox, "BUG-3")["comments"]
    assert "1:05 long" in json.dumps(comment["body"])
    assert "still recording" in json.dumps(comment["body"])


def test_duplicates_and_a_stopped_worker_while_waiting_still_make_one_note(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.remove_recording("dup-late")
    app = make_app(config_data(sandbox, posthog__recording_wait_minutes=1))
    for _ in range(3):
        enqueue_bug_report(session_id="dup-late", zendesk_ticket=106 - 2, queue=app.queue)
    with run_worker(app):
        wait_for(lambda: len(sandbox.posthog.recording_reads("dup-late")) >= 3, 10, "looks")
    # The worker stopped with every copy waiting for its next look (scheduled in Redis).
    sandbox.posthog.add_recording("dup-late")
    with run_worker(app) as worker:
        worker.drain()
    assert len(notes_on(sandbox, 104)) == 1 and shares(sandbox) == 1
    assert app.failed.all() == []
