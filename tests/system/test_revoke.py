"""``replay-attach revoke``: links dead at PostHog on every version, a trace on each ticket once,
resumable, and a re-enqueued report getting a fresh link."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from sandbox.app import Sandbox
from sandbox.doubles.messages import html_response, json_response
from tests.conftest import RunningWorker, config_data
from tests.scenarios import embed_token, jira_issue, notes_on, refuse, run_cli, wait_for
from worker import keys
from worker.app import App
from worker.attach.rendering import revoke_marker
from worker.jobs.producer import enqueue_bug_report

REVOKED = "PostHog session replay link revoked"
#: A PostHog older than sharing/refresh/ (DRF's answer for an unknown route).
NOT_FOUND = json_response(
    404, {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}
)


def attach(app: App, box: Sandbox, run_worker: Callable[..., RunningWorker], **event: Any) -> None:
    enqueue_bug_report(event, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert app.failed.all() == []


def live(box: Sandbox, token: str) -> bool:
    return requests.get(f"{box.posthog.url}/embedded/{token}", timeout=5).status_code == 200


def older_posthog(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostHog older than sharing/refresh/, where re-enabling brings the old token back."""
    box.posthog.reenable = "same_token"
    refuse(monkeypatch, box.posthog, "POST", r"/sharing/refresh/?$", NOT_FOUND)


def revoked_notes(box: Sandbox, ticket: int) -> list[dict[str, Any]]:
    return [n for n in notes_on(box, ticket) if REVOKED in n["body"]]


@pytest.mark.parametrize("reenable", ["new_token", "same_token"])
def test_revoke_a_zendesk_tickets_link_on_both_posthog_behaviours(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    redis_client: redis.Redis,
    reenable: str,
) -> None:
    sandbox.posthog.reenable = reenable
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="s-rev", zendesk_ticket=101)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    assert live(sandbox, token)

    result = run_cli(cli_env, "revoke", "--zendesk-ticket", "101", "--reason", "ticket solved")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "revoked: session s-rev, link dead; told zendesk:101"
    assert not live(sandbox, token)
    (note,) = revoked_notes(sandbox, 101)
    assert note["public"] is False and "ticket solved" in note["body"]
    assert revoke_marker(token) in note["body"] and token not in note["body"]
    status = run_cli(cli_env, "status", "--zendesk-ticket", "101").stdout
    assert "link state: revoked at " in status and "ticket solved" in status
    assert redis_client.zcard(keys.LINKS_REVOKED_KEY) == 1  # the revoked links' gauge

    already = re.compile(
        r"^already revoked: session s-rev on zendesk:101, revoked "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(ticket solved\)$"
    )
    again = run_cli(cli_env, "revoke", "--session-id", "s-rev")
    assert again.returncode == 0 and already.match(again.stdout.strip()), again.stdout
    # By its ticket too: not "no link recorded for that selection".
    by_ticket = run_cli(cli_env, "revoke", "--zendesk-ticket", "101")
    assert by_ticket.returncode == 0 and already.match(by_ticket.stdout.strip()), by_ticket.stdout
    assert len(revoked_notes(sandbox, 101)) == 1

    # A re-enqueued report gets a new link (a new token, not the revoked one back) and a new note.
    attach(app, sandbox, run_worker, session_id="s-rev", zendesk_ticket=101)
    fresh = [n for n in notes_on(sandbox, 101) if "Watch the session replay" in n["body"]]
    assert len(fresh) == 2
    new_token = embed_token(fresh[-1]["html_body"])
    assert new_token != token and live(sandbox, new_token) and not live(sandbox, token)
    status = run_cli(cli_env, "status", "--zendesk-ticket", "101").stdout
    assert "link state: active" in status
    assert redis_client.zcard(keys.LINKS_REVOKED_KEY) == 0  # the session's link is a new one


def test_revoking_one_tickets_link_tells_every_ticket_that_held_it(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="shared", zendesk_ticket=102)
    attach(app, sandbox, run_worker, session_id="shared", jira_issue="BUG-1")
    assert len(jira_issue(sandbox, "BUG-1")["remote_links"]) == 1
    result = run_cli(cli_env, "revoke", "--jira-issue", "bug-1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "told jira:BUG-1, zendesk:102" in result.stdout
    issue = jira_issue(sandbox, "BUG-1")
    assert issue["remote_links"] == []  # removed by its globalId
    assert sum(REVOKED in json.dumps(c["body"]) for c in issue["comments"]) == 1
    assert len(revoked_notes(sandbox, 102)) == 1


def test_older_than_selects_by_age_and_dry_run_changes_nothing(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    redis_client: redis.Redis,
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="old-one", zendesk_ticket=103)
    attach(app, sandbox, run_worker, session_id="new-one", zendesk_ticket=104)
    # The first was shared three days ago.
    redis_client.zadd(keys.LINKS_BY_TIME_KEY, {"old-one": time.time() - 3 * 86400})
    dry = run_cli(cli_env, "revoke", "--older-than", "2.5", "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.startswith("would revoke: session old-one, shared ")
    assert "new-one" not in dry.stdout
    old_token = embed_token(notes_on(sandbox, 103)[0]["html_body"])
    assert live(sandbox, old_token) and revoked_notes(sandbox, 103) == []
    assert sandbox.posthog.sharing_calls("old-one")[-1].method == "PATCH"  # only the share
    done = run_cli(cli_env, "revoke", "--older-than", "2.5")
    assert done.stdout.strip() == "revoked: session old-one, link dead; told zendesk:103"
    assert not live(sandbox, old_token)
    assert live(sandbox, embed_token(notes_on(sandbox, 104)[0]["html_body"]))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((), "give exactly one of"),
        (("--session-id", "a", "--zendesk-ticket", "1"), "give exactly one of"),
        (("--session-id", "no/slash"), "session_id: must be"),
        (("--jira-issue", "not a key"), "jira_issue: must be a Jira issue key"),
        (("--older-than", "-1"), "-1"),
        (("--session-id", "a", "--reason", "  "), "--reason: must not be empty"),
    ],
)
def test_a_bad_selection_exits_2_and_names_it(
    cli_env: dict[str, str], args: tuple[str, ...], problem: str
) -> None:
    result = run_cli(cli_env, "revoke", *args)
    assert result.returncode == 2 and problem in result.stderr


def test_nothing_recorded_is_said(cli_env: dict[str, str]) -> None:
    result = run_cli(cli_env, "revoke", "--session-id", "never-shared")
    assert result.returncode == 0 and result.stdout.strip() == "no link recorded for that selection"


def test_a_note_whose_answer_was_lost_is_not_posted_again_when_the_revoke_is_resumed(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="lost", zendesk_ticket=101)
    sandbox.zendesk.fail_next("lost_response", method="PUT", path_regex=r"/tickets/101\.json$")
    first = run_cli(cli_env, "revoke", "--session-id", "lost")
    assert first.returncode == 1 and "FAILED: session lost on zendesk:101" in first.stdout
    assert "run again to finish" in first.stdout
    assert len(revoked_notes(sandbox, 101)) == 1  # applied, never answered
    second = run_cli(cli_env, "revoke", "--session-id", "lost")
    assert second.returncode == 0, second.stdout
    assert len(revoked_notes(sandbox, 101)) == 1  # found on the ticket, not written again


def test_a_revoke_killed_mid_way_is_finished_by_the_next_run_with_one_note_each(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="killed", zendesk_ticket=101)
    attach(app, sandbox, run_worker, session_id="killed", zendesk_ticket=102)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    sandbox.zendesk.latency = 2.0  # the first note is in flight when the process is killed
    notes = r"/tickets/10[12]\.json$"
    before = len(sandbox.zendesk.calls("PUT", notes))
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "revoke", "--session-id", "killed"],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(sandbox.zendesk.calls("PUT", notes)) > before, 30, "a note")
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert not live(sandbox, token)  # PostHog's part was done before the notes
    sandbox.zendesk.latency = 0.0
    time.sleep(2.5)  # the killed request's answer is discarded; the double applied it
    # The revoke lock lapses with its lease: the next run goes on.
    wait_for(
        lambda: run_cli(cli_env, "revoke", "--session-id", "killed").returncode == 0,
        30,
        "the next run to finish the revocation",
    )
    assert len(revoked_notes(sandbox, 101)) == 1 and len(revoked_notes(sandbox, 102)) == 1


def test_a_posthog_outage_fails_the_revoke_and_the_next_run_finishes_it(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="outage", zendesk_ticket=101)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    sandbox.posthog.fail_next("5xx", count=10, method="PATCH", path_regex=r"/sharing/?$")
    first = run_cli(cli_env, "revoke", "--session-id", "outage")
    assert first.returncode == 1
    assert "FAILED: session outage on zendesk:101: PostHog had a server error (503)" in first.stdout
    assert live(sandbox, token) and revoked_notes(sandbox, 101) == []  # nothing told yet
    wait_for(
        lambda: run_cli(cli_env, "revoke", "--session-id", "outage").returncode == 0,
        30,
        "the revoke to go through once PostHog answers",
    )
    assert not live(sandbox, token) and len(revoked_notes(sandbox, 101)) == 1


def test_a_revoke_waits_for_a_share_of_the_session_in_flight(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    redis_client: redis.Redis,
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="busy", zendesk_ticket=101)
    # Another worker is minting this session's link: its lock lapses in 2 s.
    mint_lock = keys.MINT_LOCK_KEY.format(project=1, session="busy")
    redis_client.set(mint_lock, "another-worker", px=2_000)
    started = time.monotonic()
    result = run_cli(cli_env, "revoke", "--session-id", "busy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started >= 1.5
    assert len(revoked_notes(sandbox, 101)) == 1


def test_a_revoke_fails_and_is_tried_again_while_posthog_still_serves_the_old_link(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="cached", zendesk_ticket=101)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    # A cache in front of PostHog keeps serving the public page after the disable.
    page = html_response(200, "<html><body>Session replay</body></html>")
    refuse(monkeypatch, sandbox.posthog, "GET", rf"^/embedded/{token}/?$", page)
    first = run_cli(cli_env, "revoke", "--session-id", "cached")
    assert first.returncode == 1
    assert "PostHog still serves the revoked link of session cached" in first.stdout
    assert revoked_notes(sandbox, 101) == []
    status = json.loads(run_cli(cli_env, "status", "--session-id", "cached", "--json").stdout)
    assert "revoked" not in json.dumps(status["attachments"][0]["link_state"])
    monkeypatch.undo()
    again = run_cli(cli_env, "revoke", "--session-id", "cached")
    assert again.returncode == 0, again.stdout
    assert not live(sandbox, token) and len(revoked_notes(sandbox, 101)) == 1


def test_a_revoked_link_that_answers_again_is_revoked_again(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    older_posthog(sandbox, monkeypatch)
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="back", zendesk_ticket=101)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    assert run_cli(cli_env, "revoke", "--session-id", "back").returncode == 0
    # Someone re-enables sharing by hand in PostHog's UI: the old link answers again.
    sandbox.posthog._sharing.reenable(sandbox.posthog._sharing.shares["back"])
    assert live(sandbox, token)
    result = run_cli(cli_env, "revoke", "--session-id", "back")
    assert result.returncode == 0 and "already revoked" not in result.stdout, result.stdout
    assert not live(sandbox, token)
    # A third run finds PostHog agreeing with the record.
    third = run_cli(cli_env, "revoke", "--session-id", "back")
    assert "already revoked" in third.stdout


def test_a_posthog_that_cannot_rotate_tokens_is_never_asked_to_share_a_revoked_session(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    older_posthog(sandbox, monkeypatch)
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="old-posthog", zendesk_ticket=101)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    result = run_cli(cli_env, "revoke", "--session-id", "old-posthog")
    assert result.returncode == 0
    assert "link dead (PostHog could not rotate its token)" in result.stdout
    assert not live(sandbox, token)
    shares_before = len(sandbox.posthog.sharing_calls("old-posthog"))
    # Reported again: sharing it would bring the revoked token back, so it is not shared.
    enqueue_bug_report(session_id="old-posthog", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert "cannot issue a fresh token" in job.reason
    enables = [
        c
        for c in sandbox.posthog.sharing_calls("old-posthog")[shares_before:]
        if c.method == "PATCH" and c.json == {"enabled": True}
    ]
    assert enables == [] and not live(sandbox, token)
    assert notes_on(sandbox, 102) == []


def test_a_revoked_token_handed_back_anyway_is_switched_off_again_and_not_posted(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A PostHog whose refresh/ answers 200 but rotates nothing, and brings old tokens back.
    sandbox.posthog.reenable = "same_token"
    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="liar", zendesk_ticket=101)
    token = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    refuse(monkeypatch, sandbox.posthog, "POST", r"/sharing/refresh/?$", json_response(200, {}))
    assert run_cli(cli_env, "revoke", "--session-id", "liar").returncode == 0
    enqueue_bug_report(session_id="liar", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert "again under its revoked link" in job.reason
    assert not live(sandbox, token) and notes_on(sandbox, 102) == []
