"""The attach job when something is wrong: disabled systems, invalid messages, transient and
permanent failures, the retry horizon, and secrets kept out of logs and reasons."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from tests.conftest import RunningWorker, config_data
from tests.scenarios import jira_issue, notes_on
from worker.app import App
from worker.jobs.producer import enqueue_bug_report

SESSION = "0192c0de-1234-7abc-8def-0123456789ab"


def test_disabled_system_fails_the_event_with_a_reason(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    data = config_data(sandbox)
    del data["jira"]
    app = make_app(data)
    enqueue_bug_report(session_id="s1", jira_issue="BUG-1", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.reason.startswith("Jira is not configured: set JIRA_URL")
    assert job.attempts == 1
    assert sandbox.jira.calls() == [] and sandbox.posthog.calls() == []


def test_invalid_message_on_the_queue_is_failed_and_the_worker_keeps_going(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    app.broker.enqueue(app.actor.message({"session_id": "../etc", "zendesk_ticket": 101}))
    app.broker.enqueue(app.actor.message("not an object"))
    app.broker.enqueue(app.actor.message_with_options(args=(), kwargs={"x": 1}))
    enqueue_bug_report(session_id="good", zendesk_ticket=104, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    reasons = sorted(job.reason for job in app.failed.all())
    assert reasons == [
        "invalid event: an event must be a JSON object, not str",
        "invalid event: session_id: must be 1-200 letters, digits, '-' or '_'",
        "invalid event: the message must carry exactly one event object as its argument",
    ]
    assert len(notes_on(sandbox, 104)) == 1


@pytest.mark.parametrize("kind", ["5xx", "reset", "500"])
def test_transient_zendesk_write_failure_is_retried_into_one_note(
    kind: str, sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    sandbox.zendesk.fail_next(kind, method="PUT", path_regex=r"/tickets/105\.json$")
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=105, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert len(notes_on(sandbox, 105)) == 1
    assert app.failed.all() == []


def test_a_note_stays_single_when_the_tag_after_it_fails_past_the_in_process_retries(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    """The note lands, then the tag fails on every in-process try of two job attempts: the job
    goes back to the queue twice and, when the tag lands, the ticket still has one note."""
    app = make_app(config_data(sandbox))
    # Three tries per job attempt (integrations/retries.py): two attempts fail whole.
    sandbox.zendesk.fail_next("5xx", count=6, method="PUT", path_regex=r"/tickets/102/tags\.json$")
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert len(notes_on(sandbox, 102)) == 1
    ticket = sandbox.zendesk.ticket(102)
    assert ticket is not None and ticket["tags"].count("posthog_replay") == 1
    tag_calls = sandbox.zendesk.calls("PUT", r"/tickets/102/tags\.json$")
    assert [call.status for call in tag_calls] == [503] * 6 + [200]
    # The note was written once and known as done afterwards: never sent again, and the
    # ticket never read to find out whether it had landed.
    assert len(sandbox.zendesk.calls("PUT", r"/tickets/102\.json$")) == 1
    assert sandbox.zendesk.calls("GET", r"/tickets/102/comments") == []
    assert app.failed.all() == []


@pytest.mark.parametrize("kind", ["lost_response", "slow"])
def test_write_applied_but_unanswered_is_not_posted_twice(
    kind: str, sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, http__read_timeout_seconds=0.5))
    sandbox.zendesk.slow_seconds = 1.5
    sandbox.jira.slow_seconds = 1.5
    sandbox.zendesk.fail_next(kind, method="PUT", path_regex=r"/tickets/101\.json$")
    sandbox.jira.fail_next(kind, method="POST", path_regex=r"/comment$")
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    enqueue_bug_report(session_id=SESSION, jira_issue="BUG-1", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert len(notes_on(sandbox, 101)) == 1
    assert len(jira_issue(sandbox, "BUG-1")["comments"]) == 1
    # The uncertain outcome was checked by reading the ticket, not by writing again.
    assert len(sandbox.zendesk.calls("GET", r"/tickets/101/comments")) == 1
    assert len(sandbox.zendesk.calls("PUT", r"/tickets/101\.json$")) == 1
    assert len(sandbox.jira.calls("POST", r"/comment$")) == 1
    assert app.failed.all() == []


def test_a_jira_v2_comment_applied_but_unanswered_is_found_by_its_encoded_url(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    """A v2 comment shows its URLs percent-encoded ('-' would strike text out): the read after
    an unanswered write looks for the URL as the comment shows it, and posts nothing twice.
    The "no recording" comment is used because its URL always holds a '-' (of the session id)."""
    data = config_data(sandbox, jira__api_version=2, http__read_timeout_seconds=0.5)
    data["posthog"]["recording_wait_minutes"] = 0
    app = make_app(data)
    sandbox.jira.fail_next("lost_response", method="POST", path_regex=r"/BUG-1/comment$")
    no_recording = "0192c0de-0000-7abc-8def-0123456789ab"
    sandbox.posthog.remove_recording(no_recording)
    enqueue_bug_report(session_id=no_recording, jira_issue="BUG-1", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    comments = jira_issue(sandbox, "BUG-1")["comments"]
    assert len(comments) == 1, [c["body"] for c in comments]
    assert "/replay/0192c0de%2D0000%2D7abc" in comments[0]["body"]
    assert len(sandbox.jira.calls("POST", r"/BUG-1/comment$")) == 1
    assert len(sandbox.jira.calls("GET", r"/BUG-1/comment$")) == 1
    assert app.failed.all() == []


def test_posthog_throttle_waits_the_seconds_named_in_its_body(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    sandbox.posthog.throttle_seconds = 1
    sandbox.posthog.fail_next("429", count=2, method="PATCH")
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    patches = sandbox.posthog.calls("PATCH")
    assert [p.status for p in patches] == [429, 429, 200]
    assert patches[1].time - patches[0].time >= 0.95
    assert len(notes_on(sandbox, 101)) == 1


@pytest.mark.parametrize(
    ("overrides", "event", "reason"),
    [
        (
            {"posthog__personal_api_key": "phx_revoked"},
            {"zendesk_ticket": 101},
            "PostHog rejected the personal API key (401)",
        ),
        ({}, {"zendesk_ticket": 999}, "Zendesk ticket 999 does not exist (404)"),
        (
            {},
            {"zendesk_ticket": 106},
            "Zendesk ticket 106 is closed and can no longer be updated (422)",
        ),
        (
            {},
            {"jira_issue": "NOPE-1"},
            "Jira issue NOPE-1 does not exist or the account cannot see it (404)",
        ),
    ],
)
def test_permanent_errors_fail_at_once_with_a_reason(
    overrides: dict[str, Any],
    event: dict[str, Any],
    reason: str,
    sandbox: Any,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
) -> None:
    app = make_app(config_data(sandbox, **overrides))
    job_id = enqueue_bug_report({"session_id": SESSION, **event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert (job.job_id, job.reason, job.attempts, job.session_id) == (job_id, reason, 1, SESSION)
    failing = [r for d in sandbox.vendors for r in d.calls() if r.status and r.status >= 400]
    assert len(failing) == 1


def test_failed_tag_is_added_when_posthog_fails_for_good(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, posthog__personal_api_key="phx_revoked"))
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert sandbox.zendesk.tickets[102]["tags"][-1] == "posthog_replay_failed"
    assert notes_on(sandbox, 102) == []


@pytest.mark.parametrize(
    "data",
    [
        b"\xff{not json",
        # Valid JSON nested too deeply for Python's parser (a RecursionError inside).
        b'{"actor_name": "attach_replay", "args": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["not-json", "nested-too-deeply"],
)
def test_undecodable_message_is_set_aside_and_the_others_still_run(
    sandbox: Any,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    data: bytes,
) -> None:
    app = make_app(config_data(sandbox))
    queue = f"dramatiq:{app.actor.queue_name}"
    # Written by hand onto the queue, before a good event (both prefetched together).
    app.redis.hset(queue + ".msgs", "hand-written", data)
    app.redis.rpush(queue, "hand-written")
    enqueue_bug_report(session_id="after-poison", zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert len(notes_on(sandbox, 101)) == 1
    (job,) = app.failed.all()
    assert job.job_id == "hand-written"
    assert job.reason == "invalid message: the message is not valid dramatiq JSON"
    assert job.event == data.decode("utf-8", "replace")[:2000]
    # Kept among dramatiq's dead letters too, and no longer held by the worker.
    assert app.redis.zcard(queue + ".XQ") == 1
    assert app.redis.keys("dramatiq:__acks__*") == [] or all(
        app.redis.scard(k) == 0 for k in app.redis.keys("dramatiq:__acks__*")
    )


def test_job_is_given_up_with_its_last_reason_after_the_retry_horizon(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    # A Zendesk outage that outlasts the horizon (here 1 s instead of 24 h).
    sandbox.zendesk.fail_next("5xx", count=1000, method="PUT")
    app = make_app(
        config_data(sandbox, retry__horizon_hours=1 / 3600, posthog__recording_wait_minutes=0)
    )
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.reason.startswith(f"gave up after {job.attempts} attempts over ")
    assert job.reason.endswith(": Zendesk had a server error (503)")
    assert job.attempts >= 2
    assert job.last_failure_at - job.first_failure_at <= 2.0
    assert notes_on(sandbox, 101) == []


def test_retry_after_zero_is_no_retry_storm(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    """A proxy answering every request "503, Retry-After: 0": the waits are held to the
    minimum backoff, in process and on the queue, and the job ends after retry.max_attempts."""
    sandbox.jira.retry_after_on_503 = 0
    sandbox.jira.fail_next("5xx", count=1000, method="POST", path_regex=r"/remotelink$")
    app = make_app(
        config_data(
            sandbox,
            jira__comment=False,
            retry__min_backoff_seconds=0.3,
            retry__max_backoff_seconds=0.5,
            retry__max_attempts=3,
        )
    )
    enqueue_bug_report(session_id=SESSION, jira_issue="BUG-1", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.attempts == 3
    assert job.reason == (
        "gave up after 3 attempts (retry.max_attempts): Jira had a server error (503)"
    )
    posts = [r.time for r in sandbox.jira.calls("POST", r"/remotelink$")]
    # Three attempts of three tries each (the upsert is safe to repeat in process).
    assert len(posts) == 9
    gaps = [later - earlier for earlier, later in pairwise(posts)]
    assert min(gaps[i] for i in (0, 1, 3, 4, 6, 7)) >= 0.2  # in process
    assert min(gaps[i] for i in (2, 5)) >= 0.3  # on the queue
    assert jira_issue(sandbox, "BUG-1")["remote_links"] == []


def test_clients_are_built_once_per_thread_and_connections_reused(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    for i in range(10):
        enqueue_bug_report(session_id=f"reuse-{i}", jira_issue="BUG-1", queue=app.queue)
        enqueue_bug_report(session_id=f"reuse-{i}", zendesk_ticket=101, queue=app.queue)
    with run_worker(app, threads=1) as worker:
        worker.drain()
    assert len(sandbox.jira.issues["BUG-1"]["comments"]) == 10
    # No serverInfo or application-links calls: the writes themselves, and the project's
    # type read once (is it a service desk?).
    paths = [r.path.rsplit("/", 1)[-1] for r in sandbox.jira.calls()]
    assert set(paths) == {"remotelink", "comment", "BUG-1"} and paths.count("BUG-1") == 1
    # One thread, one keep-alive connection per vendor (a fresh client per job would open more).
    for double in sandbox.vendors:
        assert len({r.client_port for r in double.calls()}) == 1, double


def test_secrets_never_reach_the_logs_or_failed_reasons(
    sandbox: Any,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets = {
        "posthog": "phx_TOP_SECRET_1",
        "zendesk": "zd_TOP_SECRET_2",
        "jira": "jira_TOP_SECRET_3",
    }
    app = make_app(
        config_data(
            sandbox,
            posthog__personal_api_key=secrets["posthog"],
            zendesk__api_token=secrets["zendesk"],
            jira__api_token=secrets["jira"],
        )
    )
    sandbox.posthog.api_keys[secrets["posthog"]] = set(
        next(iter(sandbox.posthog.api_keys.values()))
    )
    enqueue_bug_report(
        session_id="s1", zendesk_ticket=101, queue=app.queue
    )  # Zendesk refuses the token
    enqueue_bug_report(
        session_id="s2", jira_issue="BUG-1", queue=app.queue
    )  # Jira refuses the token
    sandbox.zendesk.fail_next("reset", method="PUT")
    with caplog.at_level("DEBUG"), run_worker(app) as worker:
        worker.drain()
    reasons = sorted(job.reason for job in app.failed.all())
    assert reasons == [
        "Jira rejected the credentials (401)",
        "Zendesk rejected the email or API token (401)",
    ]
    logged = caplog.text + " ".join(reasons)
    assert "Zendesk" in logged
    for secret in secrets.values():
        assert secret not in logged
