"""``replay-attach sandbox --intake-url``, started as a process, fires the doubles' signed
webhooks at that intake."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import requests

from tests.integration import test_double_webhooks as webhooks
from tests.integration.test_double_webhooks import FIELD, Receiver, zendesk_signature_ok

# The fixture: a real HTTP server that records each webhook it receives.
receiver = webhooks.receiver


def test_sandbox_command_fires_webhooks_at_its_intake_url(receiver: Receiver) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "sandbox", "--intake-url", receiver.url],
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
        text = "".join(lines)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", text, re.M))
        assert exports["JIRA_SESSION_FIELD"] == "customfield_10042"
        assert f"{receiver.url}/webhooks/zendesk" in text and "replay-attach serve" in text
        created = requests.post(
            exports["ZENDESK_URL"] + "/api/v2/tickets.json",
            auth=(exports["ZENDESK_EMAIL"] + "/token", exports["ZENDESK_API_TOKEN"]),
            json={
                "ticket": {
                    "comment": {"body": "Broken"},
                    "custom_fields": [{"id": FIELD, "value": "sess-cli"}],
                }
            },
            timeout=5,
        )
        assert created.status_code == 201
        [got] = receiver.wait_for(1)
        assert got.json["session_id"] == "sess-cli"
        assert zendesk_signature_ok(exports["ZENDESK_WEBHOOK_SECRET"], got)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
