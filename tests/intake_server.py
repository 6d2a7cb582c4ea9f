"""``replay-attach serve`` started for real, in a process of its own, for the intake's tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.scenarios import free_port, wait_for

#: Zendesk's documented secret of the webhook builder's test sends.
ZENDESK_TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
INTAKE_TOKENS = ("intake-token-one-0123456789", "intake-token-two-0123456789")
JIRA_SECRET = "jira-webhook-secret-0123456789"
JIRA_FIELD = "customfield_10042"
POSTHOG_SECRET = "whsec_" + base64.b64encode(b"posthog-destination-secret-32byte").decode()
POSTHOG_HOST = "https://us.posthog.com"
ALL_SECRETS = (*INTAKE_TOKENS, ZENDESK_TEST_SECRET, JIRA_SECRET, POSTHOG_SECRET)


def intake_config(redis_url: str, **intake: Any) -> dict[str, Any]:
    """A configuration with every door on (override a door's secret with None to close it)."""
    doors: dict[str, Any] = {
        "tokens": ",".join(INTAKE_TOKENS),
        "zendesk_webhook_secret": ZENDESK_TEST_SECRET,
        "jira_webhook_secret": JIRA_SECRET,
        "jira_session_field": JIRA_FIELD,
        "posthog_webhook_secret": POSTHOG_SECRET,
    }
    doors.update(intake)
    return {
        "broker": {"redis_url": redis_url},
        "posthog": {"host": POSTHOG_HOST, "project_id": 1, "personal_api_key": "phx_test"},
        "intake": {k: v for k, v in doors.items() if v is not None},
    }


class IntakeServer:
    """``python -m worker serve`` on a free port, its output in a log file."""

    def __init__(
        self,
        config: dict[str, Any],
        directory: Path,
        processes: int = 1,
        metrics_port: int = 0,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "serve.log"
        path = directory / "serve-config.yaml"
        path.write_text(yaml.safe_dump(config))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REDIS_URL", "POSTHOG_", "ZENDESK_", "JIRA_", "REPLAY_ATTACH_"))
        }
        self.env["REPLAY_ATTACH_CONFIG"] = str(path)
        self.processes = processes
        self.metrics_port = metrics_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> IntakeServer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "worker",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.processes),
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._answers, 30, f"replay-attach serve on {self.url}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited {self.process.returncode}: {self.log_text()}")
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 40) -> int:
        """SIGTERM, as a platform stopping the web process; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)

    def __enter__(self) -> IntakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- senders, signed here


def zendesk_headers(
    body: bytes,
    secret: str = ZENDESK_TEST_SECRET,
    at: datetime | None = None,
    invocation: str | None = None,
) -> dict[str, str]:
    """As a Zendesk webhook signs: base64(HMAC-SHA256(secret, timestamp + body))."""
    timestamp = (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }
    if invocation is not None:
        headers["X-Zendesk-Webhook-Invocation-Id"] = invocation
    return headers


def jira_headers(
    body: bytes, secret: str = JIRA_SECRET, identifier: str | None = None
) -> dict[str, str]:
    """As a Jira admin webhook signs: sha256=<hex HMAC-SHA256(secret, body)>."""
    headers = {
        "Content-Type": "application/json; charset=UTF-8",
        "X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }
    if identifier is not None:
        headers["X-Atlassian-Webhook-Identifier"] = identifier
    return headers


def posthog_headers(
    body: bytes, webhook_id: str, secret: str = POSTHOG_SECRET, at: float | None = None
) -> dict[str, str]:
    """As the Standard Webhooks spec signs: v1,base64(HMAC(key, id.timestamp.body))."""
    timestamp = str(int(at if at is not None else time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }


def bearer(token: str = INTAKE_TOKENS[0]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
