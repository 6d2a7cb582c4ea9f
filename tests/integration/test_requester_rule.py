"""The requester rule: through the webhook doors a recording goes only to its own person's ticket.

A browser chooses every value of a PostHog event, and a requester types the session id into a
ticket field: the worker compares the ticket's requester (Zendesk) or reporter (Jira), as the
helpdesk's API shows them, with the recording's person in PostHog, and shares nothing, posts
nothing and tags nothing when they differ or cannot be told.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.scenarios import notes_on
from worker import keys
from worker.app import App
from worker.attach.events import parse_event
from worker.attach.requester import RequesterCheck, check_for
from worker.jobs.messages import queue_keys
from worker.jobs.producer import encode_report, enqueue_bug_report
from worker.metrics import JOBS

ZENDESK = "/webhooks/zendesk"
JIRA = "/webhooks/jira"
POSTHOG = "/webhooks/posthog"
MALLORY = "mallory@evil.test"


def enqueue_from(app: App, door: str | None, **event: Any) -> str:
    """Enqueue as the intake does for ``door``: the door rides in the message's options."""
    message = encode_report(parse_event(event), app.queue.queue_name, door=door)
    app.queue._write({message.redis_id: message.data})
    return message.job_id


def run(app: App, run_worker: Callable[..., RunningWorker]) -> None:
    with run_worker(app) as worker:
        worker.drain()


def counted(outcome: str, system: str = "zendesk") -> float:
    return JOBS.labels(system, outcome)._value.get()


def shares(box: Sandbox, session: str) -> list[Any]:
    return [c for c in box.posthog.sharing_calls(session) if c.method == "PATCH"]


def test_a_zendesk_requester_who_is_not_the_recordings_person_gets_nothing(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Mallory files a ticket and pastes the customer's session id into its field.
    sandbox.zendesk.add_ticket(700, subject="Look at this", requester_email=MALLORY)
    app = make_app(config_data(sandbox))
    before = counted("requester_mismatch")
    with caplog.at_level(logging.INFO):
        job_id = enqueue_from(app, ZENDESK, session_id="victim-session", zendesk_ticket=700)
        run(app, run_worker)
    assert shares(sandbox, "victim-session") == []
    ticket = sandbox.zendesk.ticket(700)
    assert ticket is not None and notes_on(sandbox, 700) == []
    assert not any(t.startswith("posthog_replay") for t in ticket["tags"])
    assert app.failed.all() == []  # its own outcome, not a failed job to retry
    assert counted("requester_mismatch") == before + 1
    lines = [r.getMessage() for r in caplog.records if job_id in r.getMessage()]
    assert any("requester rule" in line for line in lines), lines
    assert not any("@" in r.getMessage() for r in caplog.records if "requester" in r.getMessage())


def test_the_same_report_from_the_recordings_own_person_is_attached(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    # The requester's email differs in case only; the person is the sandbox's customer.
    sandbox.zendesk.add_ticket(701, requester_email="Customer@Sandbox.TEST")
    app = make_app(config_data(sandbox))
    enqueue_from(app, ZENDESK, session_id="own-session", zendesk_ticket=701)
    run(app, run_worker)
    assert len(notes_on(sandbox, 701)) == 1 and len(shares(sandbox, "own-session")) == 1


def test_a_jira_reporter_matches_by_a_distinct_id_and_a_hidden_email_is_refused(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    # A person without an email property, identified by their email as distinct id.
    sandbox.posthog.add_recording(
        "alice-session", distinct_ids=["anon-01", "alice@example.com"], email=None
    )
    sandbox.jira.add_issue("BUG-70", reporter_email="Alice@example.com")
    app = make_app(config_data(sandbox))
    enqueue_from(app, JIRA, session_id="alice-session", jira_issue="BUG-70")
    run(app, run_worker)
    issue = sandbox.jira.issue("BUG-70")
    assert issue is not None and len(issue["comments"]) == 1
    # A Cloud site whose users hide their email: the reporter cannot be told.
    sandbox.jira.hide_emails = True
    sandbox.jira.add_issue("BUG-71", reporter_email="alice@example.com")
    before = counted("requester_unknown", "jira")
    enqueue_from(app, JIRA, session_id="alice-session", jira_issue="BUG-71")
    run(app, run_worker)
    issue = sandbox.jira.issue("BUG-71")
    assert issue is not None and issue["comments"] == [] and issue["remote_links"] == []
    assert counted("requester_unknown", "jira") == before + 1


def test_an_anonymous_recording_is_never_attached_through_a_webhook(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.add_recording("anon-session", distinct_ids=[])
    app = make_app(config_data(sandbox))
    enqueue_from(app, ZENDESK, session_id="anon-session", zendesk_ticket=101)
    run(app, run_worker)
    assert notes_on(sandbox, 101) == [] and shares(sandbox, "anon-session") == []


def test_a_person_with_more_than_ten_distinct_ids_is_looked_up(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    # The recording's answer lists ten ids; the requester's email is the twelfth.
    ids = [f"device-{n}" for n in range(11)] + ["bob@example.com"]
    sandbox.posthog.add_recording("bob-session", distinct_ids=ids, email=None)
    sandbox.zendesk.add_ticket(702, requester_email="bob@example.com")
    sandbox.zendesk.add_ticket(703, requester_email="device-11@example.com")
    app = make_app(config_data(sandbox))
    enqueue_from(app, ZENDESK, session_id="bob-session", zendesk_ticket=702)
    enqueue_from(app, ZENDESK, session_id="bob-session", zendesk_ticket=703)
    # A reporter's distinct_id beyond the first ten is theirs too (not "another person's").
    enqueue_bug_report(
        session_id="bob-session", zendesk_ticket=101, distinct_id="device-10", queue=app.queue
    )
    run(app, run_worker)
    assert len(notes_on(sandbox, 702)) == 1 and notes_on(sandbox, 703) == []
    assert len(notes_on(sandbox, 101)) == 1
    assert app.failed.all() == []
    lookups = [r for r in sandbox.posthog.calls("GET") if r.path.endswith("/persons/")]
    assert {r.query["distinct_id"] for r in lookups} >= {"bob@example.com", "device-10"}


def test_a_no_recording_note_from_the_posthog_door_goes_only_to_the_events_person(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.remove_recording("lost-session")
    sandbox.posthog.add_person(["carol-device"], email="carol@example.com")
    sandbox.zendesk.add_ticket(704, requester_email="carol@example.com")
    app = make_app(config_data(sandbox, posthog__recording_wait_minutes=0))
    # Anyone with the public project key can name any ticket: someone else's gets nothing.
    enqueue_from(app, POSTHOG, session_id="lost-session", zendesk_ticket=101)
    enqueue_from(
        app, POSTHOG, session_id="lost-session", zendesk_ticket=101, distinct_id="carol-device"
    )
    # Carol's own ticket gets the note.
    enqueue_from(
        app, POSTHOG, session_id="lost-session", zendesk_ticket=704, distinct_id="carol-device"
    )
    run(app, run_worker)
    assert notes_on(sandbox, 101) == []
    (note,) = notes_on(sandbox, 704)
    assert "PostHog has no recording of session lost-session" in note["body"]
    ticket = sandbox.zendesk.ticket(101)
    assert ticket is not None and "posthog_replay_missing" not in ticket["tags"]


def test_a_no_recording_note_at_a_helpdesk_door_goes_on_the_helpdesks_own_ticket(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    # The ticket is the one the webhook fired for: saying there is no recording reveals nothing.
    sandbox.posthog.remove_recording("typo-session")
    sandbox.zendesk.add_ticket(705, requester_email=MALLORY)
    app = make_app(config_data(sandbox, posthog__recording_wait_minutes=0))
    enqueue_from(app, ZENDESK, session_id="typo-session", zendesk_ticket=705)
    run(app, run_worker)
    assert len(notes_on(sandbox, 705)) == 1


@pytest.mark.parametrize(
    ("mode", "door", "attached"),
    [
        ("webhooks", None, True),  # the command line and the Python API: a backend vouches
        ("webhooks", "/v1/bug-reports", True),
        ("webhooks", ZENDESK, False),
        ("all", "/v1/bug-reports", False),
        ("all", None, False),
        ("off", ZENDESK, True),
    ],
)
def test_privacy_match_requester_says_which_events_are_checked(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    mode: str,
    door: str | None,
    attached: bool,
) -> None:
    sandbox.zendesk.add_ticket(706, requester_email=MALLORY)
    app = make_app(config_data(sandbox, privacy__match_requester=mode))
    enqueue_from(app, door, session_id="some-session", zendesk_ticket=706)
    run(app, run_worker)
    assert len(notes_on(sandbox, 706)) == (1 if attached else 0)


def test_check_for_each_door_and_mode() -> None:
    assert check_for("webhooks", POSTHOG) is RequesterCheck.STRICT
    assert check_for("webhooks", ZENDESK) is RequesterCheck.RECORDING
    assert check_for("webhooks", JIRA) is RequesterCheck.RECORDING
    assert check_for("webhooks", "/v1/bug-reports") is RequesterCheck.OFF
    assert check_for("all", "/v1/bug-reports") is RequesterCheck.STRICT
    assert check_for("all", JIRA) is RequesterCheck.RECORDING
    assert check_for("off", POSTHOG) is RequesterCheck.OFF


def test_a_failed_webhook_job_retried_by_hand_keeps_its_door(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    redis_client: redis.Redis,
) -> None:
    app = make_app(config_data(sandbox))
    job_id = enqueue_from(app, ZENDESK, session_id="s-retry", zendesk_ticket=999_999)
    run(app, run_worker)  # no such ticket: a failed job
    (failed,) = app.failed.all()
    assert failed.door == ZENDESK
    assert app.failed.retry([job_id], app.queue) == 1
    queue_key, messages_key = queue_keys(app.queue.queue_name)
    (redis_id,) = redis_client.lrange(queue_key, 0, -1)
    message = json.loads(redis_client.hget(messages_key, redis_id) or b"{}")
    assert message["options"][keys.OPTION_DOOR] == ZENDESK
