"""``--log-format json``: one JSON object per line from every process, ids to follow a report
from its webhook to its note, and no secret in any line."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import requests
import yaml

from sandbox.app import Sandbox
from tests.conftest import config_data
from tests.intake_server import (
    ALL_SECRETS,
    IntakeServer,
    intake_config,
    zendesk_headers,
)
from tests.scenarios import notes_on, wait_for, worker_process


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed; a line that is not one JSON object fails the test."""
    parsed = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), line
        parsed.append(record)
    return parsed


def test_a_report_followed_from_its_webhook_to_its_note_by_ids_alone_in_json_logs(
    sandbox: Sandbox, redis_url: str, redis_client: Any, tmp_path: Path
) -> None:
    data = config_data(sandbox)
    data["broker"]["redis_url"] = redis_url
    data["intake"] = intake_config(redis_url)["intake"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "POSTHOG_"))}
    env |= {"REPLAY_ATTACH_CONFIG": str(path), "REPLAY_ATTACH_LOG_FORMAT": "json"}
    # Faults on every vendor: retries, resets and lost answers all log, none may show a secret.
    sandbox.set_faults(0.3, ["5xx", "429", "reset", "lost_response"])
    for offset, double in enumerate(sandbox.vendors):
        double.seed(7 + offset)
    worker_log = tmp_path / "worker.log"
    server = IntakeServer(intake_config(redis_url), tmp_path / "intake")
    server.env |= {"REPLAY_ATTACH_LOG_FORMAT": "json", "REPLAY_ATTACH_CONFIG": str(path)}
    delivered = {}
    with worker_process(env, worker_log, "-p", "1", "-t", "2") as worker, server:
        for ticket in (101, 102, 103):
            body = json.dumps({"ticket_id": str(ticket), "session_id": f"follow-{ticket}"}).encode()
            headers = zendesk_headers(body, invocation=f"zd-invocation-{ticket}")
            answer = requests.post(server.url + "/webhooks/zendesk", data=body, headers=headers)
            assert answer.status_code == 202
            delivered[ticket] = answer.json()["job_ids"][0]
        wait_for(lambda: all(notes_on(sandbox, t) for t in delivered), 90, "every note")
        wait_for(
            lambda: all(
                any(
                    r.get("outcome") == "attached" and r.get("job_id") == job
                    for r in json_lines(worker_log.read_text())
                )
                for job in delivered.values()
            ),
            30,
            "each job's last line",
        )
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    serve_lines = json_lines(server.log_text())
    worker_lines = json_lines(worker_log.read_text())
    # dramatiq's own lines, from the parent and the worker process, are JSON too.
    assert any(r["logger"].startswith("dramatiq") for r in worker_lines)
    # From the webhook delivery (its id is Zendesk's invocation id) to the job, to the note.
    (accepted,) = [
        r
        for r in serve_lines
        if r.get("delivery_id") == "zd-invocation-101" and "enqueued" in r["message"]
    ]
    job_id = delivered[101]
    assert job_id in accepted["message"]
    job_lines = [r for r in worker_lines if r.get("job_id") == job_id]
    assert job_lines and all(r["delivery_id"] == "zd-invocation-101" for r in job_lines)
    assert all(r["session_id"] == "follow-101" and r["target"] == "zendesk:101" for r in job_lines)
    (last,) = [r for r in job_lines if r.get("outcome") == "attached"]
    assert isinstance(last["duration_ms"], float) and last["attempt"] >= 1
    # No secret in any line of either command, faults and all.
    secrets = [*ALL_SECRETS, *sandbox.env().values()]
    secrets = [s for s in secrets if len(s) >= 12 and not s.startswith("http")]
    everything = server.log_text() + worker_log.read_text()
    for secret in secrets:
        assert secret not in everything


def test_the_default_stays_readable_text(cli_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    env = {k: v for k, v in cli_env.items() if k != "REPLAY_ATTACH_LOG_FORMAT"}
    with worker_process(env, log, "-p", "1", "-t", "1") as worker:
        wait_for(lambda: "Worker process is ready" in log.read_text(), 60, "the worker")
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines and all(line.startswith("[") for line in lines), lines[:3]
    assert any("[dramatiq" in line and "[INFO]" in line for line in lines)
