"""PostHog's organisation switched public sharing off: the ticket gets the private replay page.

PostHog refuses every enabling PATCH with 403 ("Public sharing is disabled for this
organization."), for every session: retrying for a day cannot help. The agents get the
session's page in PostHog (a login needed) instead, once, and the job's log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import requests

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.scenarios import notes_on
from worker.app import App
from worker.jobs.producer import enqueue_bug_report


def test_a_zendesk_ticket_gets_the_private_page_once_and_nothing_is_shared(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox.posthog.public_sharing_allowed = False
    app = make_app(config_data(sandbox))
    with caplog.at_level(logging.INFO):
        for _ in range(2):  # a duplicate report posts nothing more
            enqueue_bug_report(session_id="private-s", zendesk_ticket=101, queue=app.queue)
        with run_worker(app) as worker:
            worker.drain()
    (note,) = notes_on(sandbox, 101)
    page = f"{sandbox.posthog.url}/project/1/replay/private-s"
    assert f'href="{page}"' in note["html_body"] and "/embedded/" not in note["html_body"]
    assert "Open the session replay in PostHog" in note["body"]
    assert "public sharing switched off" in note["body"] and note["public"] is False
    assert sandbox.posthog.share_config("private-s") is None  # nothing was shared
    assert app.failed.all() == []
    patches = [c for c in sandbox.posthog.sharing_calls("private-s") if c.method == "PATCH"]
    assert [c.status for c in patches] == [403]  # tried once, not retried for a day
    assert any("public sharing is switched off" in r.getMessage() for r in caplog.records)


def test_a_jira_issue_gets_the_private_page_at_the_reports_moment(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sandbox.posthog.public_sharing_allowed = False
    app = make_app(config_data(sandbox))
    enqueue_bug_report(
        session_id="private-j", jira_issue="BUG-1", replay_seconds=42, queue=app.queue
    )
    with run_worker(app) as worker:
        worker.drain()
    issue = sandbox.jira.issue("BUG-1")
    assert issue is not None and len(issue["comments"]) == 1
    page = f"{sandbox.posthog.url}/project/1/replay/private-j?t=42"
    assert issue["remote_links"][0]["object"]["url"] == page
    assert "Open the session replay in PostHog" in str(issue["comments"][0]["body"])


def test_links_shared_before_stop_answering_when_sharing_is_switched_off(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    enqueue_bug_report(session_id="before-s", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (note,) = notes_on(sandbox, 102)
    link = note["html_body"].split('href="')[1].split('"')[0]
    assert requests.get(link, timeout=5).status_code == 200
    sandbox.posthog.public_sharing_allowed = False
    assert requests.get(link, timeout=5).status_code == 404
