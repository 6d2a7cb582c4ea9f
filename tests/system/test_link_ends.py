"""Links that end by themselves: a time to live swept by the fleet once, and solved tickets."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.intake_server import IntakeServer, intake_config, jira_headers, zendesk_headers
from tests.scenarios import embed_token, jira_issue, notes_on, wait_for, worker_process
from worker.app import App
from worker.jobs.producer import enqueue_bug_report

REVOKED = "PostHog session replay link revoked"
SECONDS = 1 / 86400  # one second, in days


def token_on(box: Sandbox, ticket: int) -> str:
    return embed_token(notes_on(box, ticket)[0]["html_body"])


def revoked_notes(box: Sandbox, ticket: int) -> list[dict[str, Any]]:
    return [n for n in notes_on(box, ticket) if REVOKED in n["body"]]


def disables(box: Sandbox, session: str) -> int:
    return sum(
        1
        for call in box.posthog.sharing_calls(session)
        if call.method == "PATCH" and call.json == {"enabled": False}
    )


def test_the_time_to_live_is_swept_once_by_a_fleet_of_two_processes(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    redis_url: str,
    tmp_path: Path,
) -> None:
    app = make_app(config_data(sandbox))
    tickets = {101: "ttl-1", 102: "ttl-2", 103: "ttl-3", 104: "ttl-4"}
    for ticket, session in tickets.items():
        enqueue_bug_report(session_id=session, zendesk_ticket=ticket, queue=app.queue)
    with run_worker(app) as worker:  # the default time to live: nothing ends here
        worker.drain()
    tokens = {ticket: token_on(sandbox, ticket) for ticket in tickets}
    data = config_data(
        sandbox, privacy__link_ttl_days=2 * SECONDS, privacy__check_every_seconds=0.3
    )
    data["broker"]["redis_url"] = redis_url
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "POSTHOG_"))}
    env["REPLAY_ATTACH_CONFIG"] = str(path)
    with worker_process(env, tmp_path / "fleet.log", "-p", "2", "-t", "2") as fleet:
        wait_for(lambda: all(revoked_notes(sandbox, t) for t in tickets), 60, "every link to end")
        time.sleep(1.0)  # more sweeps by both processes: nothing is revoked twice
        fleet.send_signal(signal.SIGTERM)
        fleet.wait(timeout=60)
    for ticket, session in tickets.items():
        assert len(revoked_notes(sandbox, ticket)) == 1
        assert "time to live" in revoked_notes(sandbox, ticket)[0]["body"]
        assert disables(sandbox, session) == 1
        assert not sandbox.posthog.is_live(tokens[ticket])


@pytest.fixture()
def intake(redis_url: str, tmp_path: Path, sandbox: Sandbox) -> Any:
    config = intake_config(redis_url)
    config["privacy"] = {"revoke_after_solved_days": 1.5 * SECONDS}
    with IntakeServer(config, tmp_path / "intake") as server:
        yield server


def zendesk_status(server: IntakeServer, ticket: int, status: str) -> requests.Response:
    body = json.dumps({"ticket_id": str(ticket), "session_id": "", "status": status}).encode()
    return requests.post(
        server.url + "/webhooks/zendesk", data=body, headers=zendesk_headers(body), timeout=10
    )


def test_a_solved_ticket_loses_its_link_after_the_delay_and_a_reopened_one_keeps_it(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    intake: IntakeServer,
    redis_client: redis.Redis,
) -> None:
    app = make_app(config_data(sandbox, privacy__check_every_seconds=0.3))
    enqueue_bug_report(session_id="solved-1", zendesk_ticket=101, queue=app.queue)
    enqueue_bug_report(session_id="reopened-1", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
        solved = zendesk_status(intake, 101, "Solved")  # as {{ticket.status}} renders it
        assert solved.status_code == 200
        assert solved.json()["ticket"].startswith("zendesk:101 solved: its replay links end at ")
        assert zendesk_status(intake, 102, "solved").status_code == 200
        assert (
            zendesk_status(intake, 102, "open").json()["ticket"]
            == "zendesk:102 open: its replay links stay"
        )
        wait_for(lambda: bool(revoked_notes(sandbox, 101)), 30, "the solved ticket's link to end")
    (note,) = revoked_notes(sandbox, 101)
    assert "the ticket was solved" in note["body"]
    assert not sandbox.posthog.is_live(token_on(sandbox, 101))
    assert revoked_notes(sandbox, 102) == [] and sandbox.posthog.is_live(token_on(sandbox, 102))
    assert redis_client.zcard("replay-attach:links:solved") == 0


def test_a_solved_ticket_gets_no_replay_and_an_unknown_status_changes_nothing(
    intake: IntakeServer, redis_client: redis.Redis
) -> None:
    body = json.dumps({"ticket_id": "103", "session_id": "late", "status": "closed"}).encode()
    answer = requests.post(
        intake.url + "/webhooks/zendesk", data=body, headers=zendesk_headers(body), timeout=10
    )
    assert answer.status_code == 200 and "solved or closed" in answer.json()["ignored"]
    # Zendesk does not resend after a 4xx: a status the door does not know is no refusal.
    unknown = zendesk_status(intake, 104, "frozen")
    assert unknown.status_code == 200 and "ticket" not in unknown.json()
    assert redis_client.zscore("replay-attach:links:solved", "zendesk:104") is None
    wait_for(
        lambda: "status 'frozen' is not one this door knows" in intake.log_text(),
        10,
        "the log to say the status was not known",
    )


def test_a_jira_issue_given_a_resolution_loses_its_link(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    intake: IntakeServer,
) -> None:
    app = make_app(config_data(sandbox, privacy__check_every_seconds=0.3))
    enqueue_bug_report(session_id="resolved-1", jira_issue="BUG-2", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
        update = {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue": {"id": "1", "key": "BUG-2", "fields": {}},
            "changelog": {"items": [{"fieldId": "resolution", "to": "10000", "toString": "Done"}]},
        }
        body = json.dumps(update).encode()
        answer = requests.post(
            intake.url + "/webhooks/jira", data=body, headers=jira_headers(body), timeout=10
        )
        assert answer.status_code == 200 and "BUG-2 solved" in answer.json()["ticket"]
        wait_for(
            lambda: any(
                REVOKED in json.dumps(c["body"]) for c in jira_issue(sandbox, "BUG-2")["comments"]
            ),
            30,
            "the resolved issue's link to end",
        )
    assert jira_issue(sandbox, "BUG-2")["remote_links"] == []


def test_a_new_ticket_is_enqueued_and_records_no_status(
    intake: IntakeServer, redis_client: redis.Redis
) -> None:
    body = json.dumps({"ticket_id": "104", "session_id": "fresh", "status": "New"}).encode()
    answer = requests.post(
        intake.url + "/webhooks/zendesk", data=body, headers=zendesk_headers(body), timeout=10
    )
    assert answer.status_code == 202 and "ticket" not in answer.json()
    assert redis_client.zcard("replay-attach:links:solved") == 0
