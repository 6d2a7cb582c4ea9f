"""Permanent errors fail a job at once with a reason a support engineer can act on; failed jobs
are kept for the retention and no longer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
import pytest

from sandbox.app import Sandbox
from sandbox.doubles.base import Double, json_response
from tests.conftest import RunningWorker, config_data
from tests.scenarios import (
    SESSION,
    jira_issue,
    notes_on,
    refuse,
)
from worker.app import App
from worker.jobs.failed import FailedJob
from worker.jobs.producer import enqueue_bug_report

# --------------------------------------------------------------------------- permanent errors


ZENDESK_403 = json_response(
    403,
    {
        "error": "Forbidden",
        "description": "You do not have access to this page. Please contact the account owner "
        "of this help desk for further help.",
    },
)
JIRA_403 = json_response(
    403,
    {"errorMessages": ["You do not have the permission to comment on this issue."], "errors": {}},
)


@pytest.mark.parametrize(
    ("case", "event", "reason", "failing"),
    [
        (
            "jira-401",
            {"jira_issue": "BUG-1"},
            "Jira rejected the credentials (401)",
            ("jira", "POST", r"/issue/BUG-1/remotelink$"),
        ),
        (
            "jira-403-remotelink",
            {"jira_issue": "BUG-1"},
            "Jira refused to let the account add a remote link on BUG-1 (403): "
            "check its permissions",
            ("jira", "POST", r"/issue/BUG-1/remotelink$"),
        ),
        (
            "jira-403-comment",
            {"jira_issue": "BUG-1"},
            "Jira refused to let the account add a comment on BUG-1 (403): check its permissions",
            ("jira", "POST", r"/issue/BUG-1/comment$"),
        ),
        (
            "zendesk-403",
            {"zendesk_ticket": 101},
            "Zendesk refused access to ticket 101 (403): check the agent's role",
            ("zendesk", "PUT", r"^/api/v2/tickets/101\.json$"),
        ),
        (
            "posthog-403",
            {"zendesk_ticket": 101},
            "PostHog refused to share the recording (403): the personal API key lacks the "
            "sharing_configuration:write scope, or the organisation disabled public sharing: "
            "\"API key missing required scope 'sharing_configuration:write'\"",
            ("posthog", "PATCH", r"/sharing/?$"),
        ),
        (
            "posthog-403-read",
            {"zendesk_ticket": 101},
            "PostHog refused to read the recording (403): the personal API key lacks the "
            'session_recording:read scope: "API key missing required scope '
            "'session_recording:read'\"",
            ("posthog", "GET", r"/session_recordings/[^/]+$"),
        ),
    ],
)
def test_more_permanent_errors_fail_at_once_with_their_reason(
    case: str,
    event: dict[str, Any],
    reason: str,
    failing: tuple[str, str, str],
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides: dict[str, Any] = {}
    if case == "jira-401":
        overrides["jira__api_token"] = "jira_revoked_token"
    elif case == "posthog-403":
        # It may read recordings, not share them.
        sandbox.posthog.api_keys["phx_read_only"] = {
            "sharing_configuration:read",
            "session_recording:read",
        }
        overrides["posthog__personal_api_key"] = "phx_read_only"
    elif case == "posthog-403-read":
        sandbox.posthog.api_keys["phx_no_recordings"] = {"sharing_configuration:write"}
        overrides["posthog__personal_api_key"] = "phx_no_recordings"
    elif case == "zendesk-403":
        refuse(monkeypatch, sandbox.zendesk, "PUT", failing[2], ZENDESK_403)
    elif case.startswith("jira-403"):
        refuse(monkeypatch, sandbox.jira, "POST", failing[2], JIRA_403)
    app = make_app(config_data(sandbox, **overrides))
    job_id = enqueue_bug_report({"session_id": SESSION, **event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    (job,) = app.failed.all()
    assert (job.job_id, job.reason, job.attempts, job.session_id) == (job_id, reason, 1, SESSION)
    vendor, method, path = failing
    calls = getattr(sandbox, vendor).calls(method, path)
    # Refused once, never asked again (well under the three calls a retry loop would make).
    assert [r.status for r in calls] == [401 if case == "jira-401" else 403]
    refused = [r for d in sandbox.vendors for r in d.calls() if r.status and r.status >= 400]
    assert len(refused) == 1
    assert notes_on(sandbox, 101) == []
    assert jira_issue(sandbox, "BUG-1")["comments"] == []
    expected_links = 1 if case == "jira-403-comment" else 0
    assert len(jira_issue(sandbox, "BUG-1")["remote_links"]) == expected_links
    tags = sandbox.zendesk.tickets[101]["tags"]
    if case.startswith("posthog-403"):
        # Not the ticket's fault: agents see the failure on the ticket.
        assert tags == ["checkout", "web", "posthog_replay_failed"]
    else:
        assert tags == ["checkout", "web"]


@pytest.mark.parametrize(
    ("vendor", "method", "path", "event", "system"),
    [
        ("posthog", "PATCH", r"/sharing/?$", {"zendesk_ticket": 101}, "PostHog"),
        ("zendesk", "PUT", r"/tickets/101\.json$", {"zendesk_ticket": 101}, "Zendesk"),
        ("zendesk", "PUT", r"/tags\.json$", {"zendesk_ticket": 101}, "Zendesk"),
        ("jira", "POST", r"/remotelink$", {"jira_issue": "BUG-1"}, "Jira"),
        ("jira", "POST", r"/comment$", {"jira_issue": "BUG-1"}, "Jira"),
    ],
    ids=["posthog-share", "zendesk-note", "zendesk-tag", "jira-remote-link", "jira-comment"],
)
def test_a_redirect_is_reported_as_a_configuration_error_never_followed(
    vendor: str,
    method: str,
    path: str,
    event: dict[str, Any],
    system: str,
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
) -> None:
    """An http:// URL behind a load balancer answers 301 to https://: following it would turn
    a POST into a GET, drop the credentials, or send the write twice."""
    double: Double = getattr(sandbox, vendor)
    double.fail_next("redirect", method=method, path_regex=path)
    app = make_app(config_data(sandbox))
    enqueue_bug_report({"session_id": SESSION, **event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    (job,) = app.failed.all()
    assert job.attempts == 1
    assert job.reason.startswith(f"{system} answered with a redirect (301) to https://127.0.0.1:")
    assert job.reason.endswith(": check the configured URL (https, host name)")
    # Asked once; nothing went to the https:// address or anywhere else afterwards.
    assert [r.status for r in double.calls(method, path)] == [301]
    redirected = [r for d in sandbox.vendors for r in d.calls() if r.status == 301]
    assert len(redirected) == 1


# --------------------------------------------------------------------------- retention


def test_failed_jobs_older_than_the_retention_disappear(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, failed__retention_days=2))
    # A real failed job (ticket 999 does not exist), then two recorded in the past.
    real_id = enqueue_bug_report(session_id=SESSION, zendesk_ticket=999, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (real,) = app.failed.all()
    now = real.last_failure_at
    day = 86400.0
    for job_id, age_days in (("three-days-old", 3.0), ("one-day-old", 1.0)):
        app.failed.record(
            FailedJob(
                job_id=job_id,
                event={"session_id": "old", "zendesk_ticket": 101},
                session_id="old",
                target="zendesk:101",
                reason="Zendesk had a server error (503)",
                attempts=3,
                first_failure_at=now - age_days * day - 60,
                last_failure_at=now - age_days * day,
            )
        )

    # all() expires by the clock: the three-day-old record is already gone.
    assert sorted(j.job_id for j in app.failed.all()) == sorted(["one-day-old", real_id])
    assert app.failed.expire_old(now=now + 1.0 * day - 1) == 0
    assert app.failed.expire_old(now=now + 1.0 * day + 1) == 1
    assert [j.job_id for j in app.failed.all()] == [real_id]
    assert app.failed.expire_old(now=now + 2.0 * day - 1) == 0
    assert app.failed.expire_old(now=now + 2.0 * day + 1) == 1
    assert app.failed.all() == [] and app.failed.count() == 0
    assert app.failed.get([real_id, "one-day-old", "three-days-old"]) == {}


# --------------------------------------------------------------------------- beyond the actor


def test_a_job_past_its_time_limit_is_retried_and_then_failed_with_its_reason(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    """dramatiq interrupts a job past its time limit with a BaseException, which skipped the
    job's outcome: the job then went through dramatiq's own retries to its dead letters,
    never to ``failed list``. Now it is an attempt like any other."""
    sandbox.posthog.slow_seconds = 4.0
    sandbox.posthog.fail_next("slow", count=100, method="PATCH")
    app = make_app(
        config_data(
            sandbox,
            http__read_timeout_seconds=10,
            worker__job_time_limit_seconds=1,
            retry__max_attempts=2,
        )
    )
    # What each dramatiq worker process does once: start the time-limit watch (its thread
    # lives as long as the process, so only this test's app starts one).
    app.broker.emit_after("process_boot")
    job_id = enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain(timeout=60)
    (job,) = app.failed.all()
    assert job.job_id == job_id and job.attempts == 2
    assert job.reason == (
        "gave up after 2 attempts (retry.max_attempts): "
        "the job ran longer than worker.job_time_limit_seconds (1 s)"
    )
    assert len(sandbox.posthog.calls("PATCH")) == 2
    assert notes_on(sandbox, 101) == []
    assert app.redis.keys("replay-attach:lock:*") == []


def test_a_message_for_an_unknown_actor_is_a_failed_job_with_its_reason(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    stray = dramatiq.Message(
        queue_name=app.actor.queue_name,
        actor_name="send_invoice",
        args=({"session_id": SESSION, "zendesk_ticket": 101},),
        kwargs={},
        options={},
    )
    app.broker.enqueue(stray)
    enqueue_bug_report(session_id="after-the-stray", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.job_id == stray.message_id and job.session_id == SESSION
    assert job.reason == (
        "invalid message: no worker handles actor 'send_invoice' "
        "(written by hand, or by another application)"
    )
    assert len(notes_on(sandbox, 102)) == 1
