"""Where the link goes, as little as needed: restricted Jira comments without a public remote
link, internal comments on service desk issues, the reporter's words kept off tickets when told,
and PostHog's share settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.scenarios import jira_issue, notes_on
from worker.app import App
from worker.config import ConfigError
from worker.jobs.producer import enqueue_bug_report


def run(app: App, run_worker: Callable[..., RunningWorker], **event: Any) -> None:
    enqueue_bug_report(event, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    assert app.failed.all() == []


def test_a_restricted_comment_comes_without_a_remote_link_unless_asked(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    visibility = {"type": "role", "value": "Developers"}
    app = make_app(config_data(sandbox, jira__comment_visibility=visibility))
    run(app, run_worker, session_id="restricted", jira_issue="BUG-1", description="secret words")
    issue = jira_issue(sandbox, "BUG-1")
    assert issue["remote_links"] == [] and len(issue["comments"]) == 1
    asked = make_app(
        config_data(sandbox, jira__comment_visibility=visibility, jira__remote_link=True)
    )
    run(asked, run_worker, session_id="asked", jira_issue="BUG-2", description="secret words")
    (link,) = jira_issue(sandbox, "BUG-2")["remote_links"]
    # Seen by everyone who can see the issue: never the reporter's words.
    assert "secret words" not in json.dumps(link)


def test_a_service_desk_issue_gets_an_internal_comment(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.jira.add_issue("HELP-7", summary="Customer request", service_desk=True)
    app = make_app(config_data(sandbox))
    run(app, run_worker, session_id="jsm", jira_issue="HELP-7")
    (comment,) = jira_issue(sandbox, "HELP-7")["comments"]
    assert comment["internal"] is True
    run(app, run_worker, session_id="software", jira_issue="BUG-3")
    (comment,) = jira_issue(sandbox, "BUG-3")["comments"]
    assert comment["internal"] is False


def test_the_reporters_words_and_page_can_be_kept_off_tickets(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(
        config_data(sandbox, notes__include_description=False, notes__include_page_url=False)
    )
    run(
        app,
        run_worker,
        session_id="private",
        zendesk_ticket=101,
        description="my card number is 4111",
        page_url="https://app.example.com/account?token=abc",
    )
    (note,) = notes_on(sandbox, 101)
    assert "4111" not in note["body"] + note["html_body"]
    assert "app.example.com" not in note["body"] + note["html_body"]


def test_share_settings_are_sent_when_sharing(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    settings = {"noHeader": True, "showInspector": False}
    app = make_app(config_data(sandbox, posthog__share_settings=settings))
    run(app, run_worker, session_id="styled", zendesk_ticket=102)
    (patch,) = sandbox.posthog.calls("PATCH", r"/sharing/?$")
    assert patch.json == {"enabled": True, "settings": settings}


def test_unknown_share_settings_are_refused(sandbox: Sandbox, make_app: Callable[..., App]) -> None:
    with pytest.raises(ConfigError, match="unknown keys noheader"):
        make_app(config_data(sandbox, posthog__share_settings={"noheader": True}))
