"""The attach job end to end on the happy paths: real Redis, worker threads and HTTP doubles."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import requests

from tests.conftest import RunningWorker, config_data
from tests.scenarios import embed_token, jira_issue, notes_on
from worker.app import App
from worker.jobs.producer import enqueue_bug_report

SESSION = "0192c0de-1234-7abc-8def-0123456789ab"


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

    notes = notes_on(sandbox, 101)
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

    # Exactly the requests we mean to send, with the right authentication: the
    # recording is read before it is shared.
    read, patch = sandbox.posthog.calls(path_regex="^/api/")
    assert (read.method, read.path) == ("GET", f"/api/projects/1/session_recordings/{SESSION}")
    assert read.headers["Authorization"] == f"Bearer {sandbox.posthog.api_key}"
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
        # Is it a service desk issue (its comments could be shown to the customer)?
        # Asked once per project and worker thread.
        ("GET", "/rest/api/3/issue/BUG-1"),
        ("POST", "/rest/api/3/issue/BUG-1/comment"),
    ]
    assert "properties" not in sandbox.jira.calls("POST", r"/comment$")[0].json
    expected = base64.b64encode(f"{sandbox.jira.email}:{sandbox.jira.api_token}".encode()).decode()
    assert all(r.headers["Authorization"] == f"Basic {expected}" for r in sandbox.jira.calls())


def test_jira_v2_posts_wiki_markup_with_escaped_description(
    sandbox: Any, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, jira__api_version=2))
    page_url = "https://app.example.com/#!/cart!checkout?coupon=-10%_off"
    enqueue_bug_report(
        session_id=SESSION,
        jira_issue="BUG-2",
        description="{noformat}[evil|http://x]",
        page_url=page_url,
        queue=app.queue,
    )
    with run_worker(app) as worker:
        worker.drain()
    (comment,) = jira_issue(sandbox, "BUG-2")["comments"]
    body = comment["body"]
    assert isinstance(body, str)
    link = sandbox.jira.issues["BUG-2"]["remote_links"][0]["object"]["url"]
    # Every URL is percent-encoded where wiki markup would read it ('!' starts an image):
    # the comment's link still opens the recording the remote link opens.
    (shown,) = re.findall(r"\[Watch the session replay\|([^\]]+)\]", body)
    assert unquote(shown) == link
    assert requests.get(shown, timeout=5).status_code == 200
    assert sandbox.posthog.session_for(unquote(embed_token(shown))) == SESSION
    assert "Page: [https://app.example.com/#%21/cart%21checkout?coupon=%2D10%25%5Foff]" in body
    assert "!" not in body.replace("(!)", "")
    assert "Reporter's description:\n\\{noformat\\}\\[evil\\|http\\://x\\]" in body
    assert [r.path for r in sandbox.jira.calls()] == [
        "/rest/api/2/issue/BUG-2/remotelink",
        "/rest/api/2/issue/BUG-2",
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


def test_jira_data_center_under_a_path_gets_every_call_under_it(
    redis_client: Any,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    cli_env: dict[str, str],
) -> None:
    """JIRA_URL=https://host/jira: REST reads, remote links, comments, the check for a comment
    after an unanswered write, and a revocation's link removal all go under /jira."""
    from sandbox.app import Sandbox
    from worker.attach.revoke import revoke_link
    from worker.attach.services import build_services

    with Sandbox(jira_deployment="datacenter", jira_context_path="/jira") as box:
        box.seed_demo_data()
        env = box.env()
        assert env["JIRA_URL"].endswith("/jira")
        data = config_data(
            box,
            jira__email=None,
            jira__api_token=None,
            jira__personal_access_token=env["JIRA_PERSONAL_ACCESS_TOKEN"],
        )
        app = make_app(data)
        # The comment is applied but its answer lost: the retry reads the comments first.
        box.jira.fail_next("lost_response", method="POST", path_regex=r"/comment$")
        enqueue_bug_report(session_id=SESSION, jira_issue="BUG-3", queue=app.queue)
        with run_worker(app) as worker:
            worker.drain()
        issue = box.jira.issue("BUG-3")
        assert issue is not None
        assert len(issue["comments"]) == 1 and len(issue["remote_links"]) == 1
        revoke_link(SESSION, "test", "test", build_services(app.config, redis_client))
        issue = box.jira.issue("BUG-3")
        assert issue is not None and issue["remote_links"] == []
        calls = box.jira.calls()
        assert any(r.method == "GET" and r.path.endswith("/comment") for r in calls)
        assert any(r.method == "DELETE" for r in calls)
        paths = [r.path for r in calls]
        assert paths and all(p.startswith("/jira/rest/") for p in paths), paths


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
    (note,) = notes_on(sandbox, 102)
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
    assert len(notes_on(sandbox, 103)) == 1
    assert len(jira_issue(sandbox, "BUG-5")["comments"]) == 1
    assert len(sandbox.jira.issues["BUG-5"]["remote_links"]) == 1
    assert app.failed.all() == []
    # Minting was serialised: every token handed out is still live.
    tokens = {embed_token(n["html_body"]) for n in notes_on(sandbox, 103)}
    assert all(sandbox.posthog.is_live(t) for t in tokens)
