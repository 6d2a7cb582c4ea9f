"""What the scenario tests share: the event they use, how they read the doubles, and waiting."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import Sandbox
from sandbox.doubles.base import Double, Request, Response
from worker.app import App, create_app
from worker.config import Config

SESSION = "0192c0de-5e55-7abc-8def-0123456789ab"
#: The heading of every note and comment replay-attach posts (see worker/attach/rendering.py).
HEADING = "PostHog session replay"
QUEUE = "replay-attach"


def notes_on(box: Sandbox, ticket: int) -> list[dict[str, Any]]:
    """replay-attach's notes on a Zendesk ticket (a deep copy, safe while the double serves)."""
    return [c for c in box.zendesk.comments(ticket) if HEADING in (c["body"] or "")]


def jira_issue(box: Sandbox, key: str) -> dict[str, Any]:
    issue = box.jira.issue(key)
    assert issue is not None, key
    return issue


def embed_token(text: str) -> str:
    match = re.search(r"/embedded/([^?\"<\s\]|]+)", text)
    assert match, text
    return match.group(1)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``predicate()``; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox_with(**options: Any) -> Iterator[Sandbox]:
    with Sandbox(**options) as box:
        box.seed_demo_data()
        yield box


@contextmanager
def app_on(url: str, config: Config) -> Iterator[App]:
    """An app on a Redis of the test's own (the ``make_app`` fixture uses the shared one)."""
    app = create_app(config, url=url)
    try:
        yield app
    finally:
        app.broker.close()


def refuse(
    monkeypatch: pytest.MonkeyPatch,
    double: Double,
    method: str,
    path_regex: str,
    response: Response,
) -> None:
    """Make ``double`` answer matching requests with ``response``, as a vendor enforcing a
    permission the doubles do not model would. The request is still recorded, with its status."""
    original = double._dispatch
    pattern = re.compile(path_regex)

    def dispatch(request: Request) -> Response:
        if request.method == method and pattern.search(request.path):
            return response
        return original(request)

    monkeypatch.setattr(double, "_dispatch", dispatch)


def all_attached(box: Sandbox, tickets: dict[int, str], issues: dict[str, str]) -> bool:
    """Whether every step landed: a note and the tag on each ticket, a remote link and a
    comment on each issue (each ticket and issue is given one session)."""
    for ticket, session in tickets.items():
        zd = box.zendesk.ticket(ticket)
        if zd is None or "posthog_replay" not in zd["tags"]:
            return False
        if not any(session in n["body"] for n in notes_on(box, ticket)):
            return False
    for key, session in issues.items():
        issue = box.jira.issue(key)
        if issue is None or not issue["remote_links"]:
            return False
        if not any(session in str(c["body"]) for c in issue["comments"]):
            return False
    return True


def assert_attached_exactly_once(
    box: Sandbox, tickets: dict[int, str], issues: dict[str, str]
) -> None:
    """One note and the tag on each ticket, one comment and one remote link on each issue, every
    link pointing at a live share of the right recording. Each ticket/issue has one session."""
    for ticket, session in tickets.items():
        notes = notes_on(box, ticket)
        assert len(notes) == 1, (ticket, len(notes))
        assert session in notes[0]["body"] and notes[0]["public"] is False
        token = embed_token(notes[0]["html_body"])
        assert box.posthog.session_for(token) == session and box.posthog.is_live(token)
        zd = box.zendesk.ticket(ticket)
        assert zd is not None and zd["tags"].count("posthog_replay") == 1
    for key, session in issues.items():
        issue = jira_issue(box, key)
        assert len(issue["comments"]) == 1, (key, len(issue["comments"]))
        assert len(issue["remote_links"]) == 1, (key, len(issue["remote_links"]))
        url = issue["remote_links"][0]["object"]["url"]
        assert issue["remote_links"][0]["globalId"] == f"posthog-replay:1:{session}"
        token = embed_token(url)
        assert box.posthog.session_for(token) == session and box.posthog.is_live(token)
        assert url in str(issue["comments"][0]["body"])


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``replay-attach ARGS`` in a process of its own, as a person would run it."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def worker_process(
    env: dict[str, str], log: Path, *options: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``replay-attach worker OPTIONS`` (default ``-p 1 -t 4``) in its own process group,
    its output in ``log``; SIGTERMed, then SIGKILLed, if still running at the end."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", *(options or ("-p", "1", "-t", "4"))],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
