"""The attach job end to end: real Redis, real worker threads, real-HTTP vendor doubles."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from tests.conftest import RunningWorker, config_data
from worker.app import App
from worker.attach import ledger as ledger_module
from worker.attach.events import parse_event
from worker.attach.services import build_services
from worker.attach.use_case import attach_replay
from worker.config import Config
from worker.jobs.producer import enqueue_bug_report

SESSION = "0192c0de-1234-7abc-8def-0123456789ab"


def zendesk_notes(box: Any, ticket: int) -> list[dict[str, Any]]:
    return [
        c
        for c in box.zendesk.tickets[ticket]["comments"]
        if "PostHog session replay" in (c["body"] or "")
    ]


def jira_comments(box: Any, key: str) -> list[dict[str, Any]]:
    return box.jira.issues[key]["comments"]


def embed_token(link: str) -> str:
    match = re.search(r"/embedded/([^?\"<\s]+)", link)
    assert match, link
    return match.group(1)


def test_zendesk_happy_path_posts_one_internal_note_and_adds_a_tag(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    job_id = enqueue_bug_report(
        {
            "session_id": SESSION,
            "zendesk_ticket": 101,
            "description": "<script>alert(1)</script> Pay fails",
            "replay_seconds": 42,
        },
        queue=app.queue,
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", job_id)
    with run_worker(app) as worker:
        worker.drain()

    notes = zendesk_notes(sandbox, 101)
    assert len(notes) == 1
    note = notes[0]
    assert note["public"] is False
    assert SESSION in note["body"] and SESSION in note["html_body"]
    assert "<script>" not in note["html_body"] and "&lt;script&gt;" in note["html_body"]
    token = embed_token(note["html_body"])
    assert sandbox.posthog.is_live(token)
    assert sandbox.posthog.session_for(token) == SESSION
    assert f"{sandbox.posthog.url}/embedded/{token}?t=42" in note["html_body"]
    # The embed link works for a viewer.
    page = requests.get(f"{sandbox.posthog.url}/embedded/{token}", timeout=5)
    assert page.status_code == 200 and SESSION in page.text
    # The tag was added without replacing the ticket's own tags.
    assert sandbox.zendesk.tickets[101]["tags"] == ["checkout", "web", "posthog_replay"]

    # Exactly the requests we mean to send, with the right authentication.
    (patch,) = sandbox.posthog.calls(path_regex="^/api/")
    assert (
        patch.method == "PATCH"
        and patch.path == f"/api/projects/1/session_recordings/{SESSION}/sharing"
    )
    assert patch.json == {"enabled": True}
    assert patch.headers["Authorization"] == f"Bearer {sandbox.posthog.api_key}"
    assert "personal_api_key" not in patch.query
    put, tags = sandbox.zendesk.calls()
    assert (put.method, put.path) == ("PUT", "/api/v2/tickets/101.json")
    assert put.json["ticket"]["comment"]["public"] is False
    assert "tags" not in put.json["ticket"]
    assert (tags.method, tags.path, tags.json) == (
        "PUT",
        "/api/v2/tickets/101/tags.json",
        {"tags": ["posthog_replay"]},
    )
    expected = base64.b64encode(
        f"{sandbox.zendesk.email}/token:{sandbox.zendesk.api_token}".encode()
    ).decode()
    assert put.headers["Authorization"] == f"Basic {expected}"
    assert app.failed.all() == []


def test_jira_cloud_v3_posts_an_adf_comment_and_an_upserting_remote_link(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    enqueue_bug_report(
        session_id=SESSION,
        jira_issue="bug-1",
        description="[x|javascript:alert(1)] *bold*",
        queue=app.queue,
    )
    with run_worker(app) as worker:
        worker.drain()

    issue = sandbox.jira.issues["BUG-1"]
    (link,) = issue["remote_links"]
    assert link["globalId"] == f"posthog-replay:1:{SESSION}"
    assert link["object"]["title"] == f"Session replay {SESSION}"
    token = embed_token(link["object"]["url"])
    assert sandbox.posthog.is_live(token)
    (comment,) = issue["comments"]
    body = comment["body"]
    assert body["type"] == "doc" and body["version"] == 1
    hrefs = [
        m["attrs"]["href"]
        for p in body["content"]
        for n in p.get("content", [])
        for m in n.get("marks", [])
        if m["type"] == "link"
    ]
    assert hrefs == [link["object"]["url"]]
    # The reporter's text is a plain text node, never markup.
    assert any(
        n.get("text") == "[x|javascript:alert(1)] *bold*"
        for p in body["content"]
        for n in p.get("content", [])
    )
    assert sandbox.jira.schema_violations == []
    paths = [(r.method, r.path) for r in sandbox.jira.calls()]
    assert paths == [
        ("POST", "/rest/api/3/issue/BUG-1/remotelink"),
        ("POST", "/rest/api/3/issue/BUG-1/comment"),
    ]
    expected = base64.b64encode(f"{sandbox.jira.email}:{sandbox.jira.api_token}".encode()).decode()
    assert all(r.headers["Authorization"] == f"Basic {expected}" for r in sandbox.jira.calls())


def test_jira_v2_posts_wiki_markup_with_escaped_description(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, jira__api_version=2))
    enqueue_bug_report(
        session_id=SESSION,
        jira_issue="BUG-2",
        description="{noformat}[evil|http://x]",
        queue=app.queue,
    )
    with run_worker(app) as worker:
        worker.drain()
    (comment,) = jira_comments(sandbox, "BUG-2")
    assert isinstance(comment["body"], str)
    link = sandbox.jira.issues["BUG-2"]["remote_links"][0]["object"]["url"]
    assert f"[Watch the session replay|{link}]" in comment["body"]
    assert "{noformat}{ noformat}[evil|http://x]{noformat}" in comment["body"]
    assert [r.path for r in sandbox.jira.calls()] == [
        "/rest/api/2/issue/BUG-2/remotelink",
        "/rest/api/2/issue/BUG-2/comment",
    ]


def test_jira_data_center_uses_a_bearer_personal_access_token_on_v2(
    redis_client: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    from sandbox.app import Sandbox

    with Sandbox(jira_deployment="datacenter") as box:
        box.seed_demo_data()
        env = box.env()
        data = config_data(
            box,
            jira__email=None,
            jira__api_token=None,
            jira__personal_access_token=env["JIRA_PERSONAL_ACCESS_TOKEN"],
        )
        app = make_app(data)
        enqueue_bug_report(session_id=SESSION, jira_issue="BUG-3", queue=app.queue)
        with run_worker(app) as worker:
            worker.drain()
        assert len(box.jira.issues["BUG-3"]["comments"]) == 1
        assert all(
            r.headers["Authorization"] == f"Bearer {env['JIRA_PERSONAL_ACCESS_TOKEN']}"
            for r in box.jira.calls()
        )
        assert {r.path.split("/")[3] for r in box.jira.calls()} == {"2"}


def test_comment_only_and_link_only_options(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, jira__remote_link=False))
    enqueue_bug_report(session_id="s1", jira_issue="BUG-4", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    issue = sandbox.jira.issues["BUG-4"]
    assert len(issue["comments"]) == 1 and issue["remote_links"] == []


def test_public_comment_option(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, zendesk__public_comment=True, zendesk__tag=None))
    enqueue_bug_report(session_id="s1", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (note,) = zendesk_notes(sandbox, 102)
    assert note["public"] is True
    assert "posthog_replay" not in sandbox.zendesk.tickets[102]["tags"]


def test_duplicate_events_post_once(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    for _ in range(5):
        enqueue_bug_report(session_id=SESSION, zendesk_ticket=103, queue=app.queue)
        enqueue_bug_report(session_id=SESSION, jira_issue="BUG-5", queue=app.queue)
    with run_worker(app, threads=8) as worker:
        worker.drain()
    assert len(zendesk_notes(sandbox, 103)) == 1
    assert len(jira_comments(sandbox, "BUG-5")) == 1
    assert len(sandbox.jira.issues["BUG-5"]["remote_links"]) == 1
    assert app.failed.all() == []
    # Minting was serialised: every token handed out is still live.
    tokens = {embed_token(n["html_body"]) for n in zendesk_notes(sandbox, 103)}
    assert all(sandbox.posthog.is_live(t) for t in tokens)


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
    assert len(zendesk_notes(sandbox, 104)) == 1


@pytest.mark.parametrize("kind", ["5xx", "reset", "500"])
def test_transient_zendesk_write_failure_is_retried_into_one_note(
    kind: str, sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    sandbox.zendesk.fail_next(kind, method="PUT", path_regex=r"/tickets/105\.json$")
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=105, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert len(zendesk_notes(sandbox, 105)) == 1
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
    assert len(zendesk_notes(sandbox, 101)) == 1
    assert len(jira_comments(sandbox, "BUG-1")) == 1
    # The uncertain outcome was checked by reading the ticket, not by writing again.
    assert len(sandbox.zendesk.calls("GET", r"/tickets/101/comments")) == 1
    assert len(sandbox.zendesk.calls("PUT", r"/tickets/101\.json$")) == 1
    assert len(sandbox.jira.calls("POST", r"/comment$")) == 1
    assert app.failed.all() == []


def test_posthog_throttle_waits_the_seconds_named_in_its_body(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    sandbox.posthog.throttle_seconds = 1
    sandbox.posthog.fail_next("429", count=2)
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    patches = sandbox.posthog.calls("PATCH")
    assert [p.status for p in patches] == [429, 429, 200]
    assert patches[1].time - patches[0].time >= 0.95
    assert len(zendesk_notes(sandbox, 101)) == 1


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
    assert zendesk_notes(sandbox, 102) == []


def test_undecodable_message_is_set_aside_and_the_others_still_run(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    queue = f"dramatiq:{app.actor.queue_name}"
    # Written by hand onto the queue, before a good event (both prefetched together).
    app.redis.hset(queue + ".msgs", "hand-written", b"\xff{not json")
    app.redis.rpush(queue, "hand-written")
    enqueue_bug_report(session_id="after-poison", zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert len(zendesk_notes(sandbox, 101)) == 1
    (job,) = app.failed.all()
    assert job.job_id == "hand-written"
    assert job.reason == "invalid message: the message is not valid dramatiq JSON"
    assert "{not json" in job.event
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
    app = make_app(config_data(sandbox, retry__horizon_hours=1 / 3600))
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (job,) = app.failed.all()
    assert job.reason.startswith(f"gave up after {job.attempts} attempts over ")
    assert job.reason.endswith(": Zendesk had a server error (503)")
    assert job.attempts >= 2
    assert job.last_failure_at - job.first_failure_at <= 2.0
    assert zendesk_notes(sandbox, 101) == []


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
    # No serverInfo or application-links calls: only the writes themselves.
    assert {r.path.rsplit("/", 1)[-1] for r in sandbox.jira.calls()} == {"remotelink", "comment"}
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


def counting_client(redis_url: str) -> tuple[redis.Redis, list[int]]:
    """A real client whose connections (TCP or Unix socket) count the commands the calling
    thread sends (not the lease keeper's renewals, which may land at any moment)."""
    sent = [0]
    counted = threading.get_ident()
    base: type[redis.connection.AbstractConnection] = redis.ConnectionPool.from_url(
        redis_url
    ).connection_class

    class Counting(base):  # type: ignore[valid-type,misc]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if threading.get_ident() == counted:
                sent[0] += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool.from_url(redis_url, connection_class=Counting)
    return redis.Redis(connection_pool=pool), sent


@pytest.mark.parametrize("target", ["zendesk", "jira"])
def test_a_new_attachment_costs_two_redis_round_trips(
    sandbox: Any,
    make_config: Callable[..., Config],
    redis_url: str,
    redis_client: redis.Redis,  # flushes the test database
    target: str,
) -> None:
    """Open (lock, read, mint lock, "pending" for the write not safe to repeat) and the
    end: every extra round trip costs each job about as much CPU as an HTTP request."""
    client, sent = counting_client(redis_url)
    services = build_services(make_config(config_data(sandbox)), client)
    events = [
        parse_event(
            {"session_id": f"{SESSION[:-2]}{i:02d}"}
            | ({"zendesk_ticket": 101} if target == "zendesk" else {"jira_issue": "BUG-1"})
        )
        for i in range(3)
    ]
    attach_replay(events[0], services)  # scripts loaded, connections opened
    for event in events[1:]:
        sent[0] = 0
        result = attach_replay(event, services)
        assert len(result.written) == 2
        assert sent[0] == 2
    client.close()


@pytest.mark.parametrize(
    ("event", "failing_call"),
    [
        ({"zendesk_ticket": 101}, ("posthog", "PATCH", r"/sharing$")),
        ({"jira_issue": "BUG-1"}, ("posthog", "PATCH", r"/sharing$")),
        ({"jira_issue": "BUG-1"}, ("jira", "POST", r"/remotelink$")),
    ],
    ids=["zendesk: share fails", "jira: share fails", "jira: remote link fails"],
)
def test_a_write_reserved_but_never_attempted_is_not_looked_for_later(
    sandbox: Any,
    make_config: Callable[..., Config],
    redis_url: str,
    redis_client: redis.Redis,  # flushes the test database
    event: dict[str, Any],
    failing_call: tuple[str, str, str],
) -> None:
    """The note or comment is marked "pending" when the job opens; a step before it that
    fails clears that mark, so the next attempt writes at once instead of reading first."""
    from integrations.errors import RetryLater

    client, sent = counting_client(redis_url)
    services = build_services(make_config(config_data(sandbox)), client)
    attach_replay(parse_event({"session_id": "warm-up", **event}), services)  # scripts loaded
    for double in sandbox.vendors:
        double.reset_requests()
    parsed = parse_event({"session_id": SESSION, **event})
    vendor, method, path = failing_call
    getattr(sandbox, vendor).fail_next("5xx", method=method, path_regex=path, count=3)
    sent[0] = 0
    with pytest.raises(RetryLater):
        attach_replay(parsed, services)
    # The open, then one script that clears the reservation while it releases the locks:
    # once the attach lock is gone, another worker's reservation may stand in its place.
    assert sent[0] == 2
    record = services.ledger.read(parsed.target, SESSION)
    assert "note" not in record and "comment" not in record
    assert redis_client.keys("replay-attach:lock:*") == []

    result = attach_replay(parsed, services)
    assert result.written == (
        ["note", "tag"] if "zendesk_ticket" in event else ["remote_link", "comment"]
    )
    # No duplicate check: nothing was ever sent that could have landed.
    assert sandbox.zendesk.calls("GET") == [] and sandbox.jira.calls("GET") == []


def test_a_worker_killed_after_opening_leaves_the_write_to_be_looked_for(
    sandbox: Any, make_config: Callable[..., Config], redis_client: redis.Redis
) -> None:
    """A reservation left behind (the worker died between opening and writing) is an
    uncertain outcome: the redo reads the ticket once, finds nothing, and writes once."""
    services = build_services(make_config(config_data(sandbox)), redis_client)
    parsed = parse_event({"session_id": SESSION, "zendesk_ticket": 101})
    with services.ledger.attachment(parsed.target, SESSION, ("note",)) as opened:
        assert opened.record == {} and opened.reserved == {"note"}
        # Killed here: nothing of this process runs again, not even the block's
        # clean-up, and its locks' leases lapse.
        opened._unattempted = []
        for lease in (opened._attach, opened._mint):
            ledger_module.leases.drop(lease)
            redis_client.delete(lease.name)
        opened._attach_held = opened._mint_held = False
    assert services.ledger.read(parsed.target, SESSION)["note"].startswith("pending:")

    assert attach_replay(parsed, services).written == ["note", "tag"]
    assert len(sandbox.zendesk.calls("GET", r"/tickets/101/comments")) == 1
    assert len(zendesk_notes(sandbox, 101)) == 1
