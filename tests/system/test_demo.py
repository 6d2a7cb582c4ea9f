"""`replay-attach demo` and `replay-attach sandbox`, run as a new user would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import psutil
import requests

from sandbox.demo import SAMPLE_REPORTS


def _keepers_for(prefix: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if prefix in cmdline and ("redis-server" in cmdline or "embedded_redis" in cmdline):
            found.append(proc)
    return found


def test_demo_runs_on_the_embedded_broker_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_URL", "POSTHOG_", "ZENDESK_", "JIRA_"))
    }
    env["TMPDIR"] = str(tmp_path)  # the demo's temporary directory lands here
    result = subprocess.run(
        [sys.executable, "-m", "worker", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "embedded Redis started: unix://" in out
    landed = re.findall(r"^  (Zendesk ticket \d+|Jira issue [A-Z]+-\d+): (.*)$", out, re.M)
    # The samples, and a ticket and an issue whose webhooks enqueued them (no enqueue call).
    assert len(landed) == len(SAMPLE_REPORTS) + 2
    assert [target.split()[0] for target, what in landed if what.endswith("(by webhook)")] == [
        "Zendesk",
        "Jira",
    ]
    assert "replay-attach serve: http://127.0.0.1:" in out
    missing = [t for t, what in landed if "PostHog has no recording of this session" in what]
    assert missing == ["Zendesk ticket 105"]  # after the demo's short wait, and no link
    for target, what in landed:
        if target in missing:
            continue
        assert re.search(
            r"(internal note|remote link \+ comment) with http://127\.0\.0\.1:\d+/embedded/\S+",
            what,
        ), what
    assert re.search(r"demo-session-late: [2-9]\d* looks .* the last answered 200; shared", out)
    assert re.search(r"demo-session-no-recording: \d+ looks .* answered 404; never shared", out)
    assert re.search(r"ticket 102: 2 attempts, the first answered 503", out)
    # Someone pasted another person's session id into their own ticket: refused.
    assert re.search(
        r"^  refused: Zendesk ticket \d+: its requester is not the person recorded in "
        r"demo-session-01; nothing shared, no note \(by webhook\)$",
        out,
        re.M,
    ), out
    assert "demo finished: every sample report has its replay on its ticket, or a note" in out
    # No redis-server, no keeper, no temporary directory left.
    assert list(tmp_path.iterdir()) == []
    assert _keepers_for(str(tmp_path)) == []


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_sandbox_command_prints_its_environment_and_serves_the_console() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "sandbox", "--latency", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", "".join(lines), re.M))
        assert set(exports) >= {
            "POSTHOG_HOST",
            "POSTHOG_PROJECT_ID",
            "POSTHOG_PERSONAL_API_KEY",
            "ZENDESK_URL",
            "ZENDESK_EMAIL",
            "ZENDESK_API_TOKEN",
            "JIRA_URL",
            "JIRA_EMAIL",
            "JIRA_API_TOKEN",
        }
        console = re.search(r"support agent's view: (\S+)", "".join(lines))
        assert console
        page = requests.get(console.group(1), timeout=5)
        assert page.status_code == 200
        parser = _Text()
        parser.feed(page.text)
        text = " ".join(parser.text)
        assert "Checkout button does nothing" in text and "BUG-1" in text
        assert parser.scripts == 0
        me = requests.get(
            exports["ZENDESK_URL"] + "/api/v2/users/me.json",
            auth=(exports["ZENDESK_EMAIL"] + "/token", exports["ZENDESK_API_TOKEN"]),
            timeout=5,
        )
        assert me.json()["user"]["email"] == exports["ZENDESK_EMAIL"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
