"""Prometheus metrics, health and ``status --json``, scraped over HTTP from real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sandbox.app import Sandbox
from tests.conftest import config_data
from tests.intake_server import IntakeServer, intake_config, zendesk_headers
from tests.scenarios import free_port, notes_on, run_cli, wait_for
from worker.attach.events import parse_event
from worker.jobs.producer import BugReportQueue

ROOT = Path(__file__).resolve().parents[2]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer, parsed by prometheus_client's own parser."""
    text = requests.get(url, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


@pytest.fixture()
def fleet(
    sandbox: Sandbox, redis_url: str, redis_client: Any, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """``replay-attach worker -p 2`` with its metrics port; yields its base URL and its pid."""
    data = config_data(sandbox)
    data["broker"]["redis_url"] = redis_url
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "POSTHOG_"))}
    env["REPLAY_ATTACH_CONFIG"] = str(path)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "worker",
            "-p",
            "2",
            "-t",
            "2",
            "--metrics-port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return requests.get(base + "/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(healthy, 60, "the worker's /healthz")
        yield base, process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def test_counts_are_exact_and_health_turns_when_a_worker_process_dies(
    sandbox: Sandbox, redis_url: str, redis_client: Any, fleet: tuple[str, int]
) -> None:
    base, parent = fleet
    queue = BugReportQueue(redis_client, "replay-attach")
    sandbox.posthog.throttle_seconds = 0
    sandbox.posthog.fail_next("429", method="GET", path_regex=r"/session_recordings/[^/]+/?$")
    tickets = {101: "m-1", 102: "m-2", 103: "m-3"}
    for ticket, session in tickets.items():
        queue.enqueue(parse_event({"session_id": session, "zendesk_ticket": ticket}))
    queue.enqueue(parse_event({"session_id": "m-4", "jira_issue": "BUG-1"}))
    queue.enqueue(parse_event({"session_id": "m-1", "zendesk_ticket": 101}))  # a duplicate
    queue.enqueue(parse_event({"session_id": "m-5", "zendesk_ticket": 106}))  # closed: fails

    def finished() -> float:
        # A duplicate running beside its original meets its lock and is retried ("retry").
        samples = scrape(base + "/metrics")
        return total(samples, "replay_attach_jobs_total") - total(
            samples, "replay_attach_jobs_total", outcome="retry"
        )

    wait_for(lambda: finished() == 6, 60, "6 jobs to end")
    samples = scrape(base + "/metrics")
    assert total(samples, "replay_attach_jobs_total", outcome="attached") == 4
    assert total(samples, "replay_attach_jobs_total", system="zendesk", outcome="attached") == 3
    assert total(samples, "replay_attach_jobs_total", outcome="already_attached") == 1
    assert total(samples, "replay_attach_jobs_total", outcome="failed") == 1
    assert all(len(notes_on(sandbox, t)) == 1 for t in tickets)
    # Every request the doubles received, counted by the workers that sent it.
    for system, double in (
        ("posthog", sandbox.posthog),
        ("zendesk", sandbox.zendesk),
        ("jira", sandbox.jira),
    ):
        sent = total(samples, "replay_attach_vendor_requests_total", system=system)
        assert sent == len(double.calls()), system
        assert (
            total(samples, "replay_attach_vendor_request_duration_seconds_count", system=system)
            == sent
        )
    assert (
        total(samples, "replay_attach_vendor_requests_total", system="zendesk", status="4xx") >= 1
    )
    assert total(samples, "replay_attach_vendor_throttled_total", system="posthog") == 1
    assert (
        total(samples, "replay_attach_vendor_requests_total", system="posthog", status="429") == 1
    )
    # One spelling of each system in every family.
    systems = {dict(labels).get("system") for (_, labels) in samples} - {None}
    assert systems <= {"posthog", "zendesk", "jira", "unknown"}, systems
    assert total(samples, "replay_attach_queue_depth") == 0
    assert total(samples, "replay_attach_failed_jobs") == 1
    # The closed ticket's link was minted (and recorded, to end in time) before its note failed.
    assert total(samples, "replay_attach_links", state="active") == 5
    assert total(samples, "replay_attach_links", state="revoked") == 0
    assert total(samples, "replay_attach_worker_healthy") == 1

    # A worker process killed: /healthz turns (503), or the port goes with its parent.
    psutil.Process(parent).children()[0].kill()

    def unhealthy() -> bool:
        try:
            return requests.get(base + "/healthz", timeout=2).status_code == 503
        except requests.ConnectionError:
            return True

    wait_for(unhealthy, 30, "/healthz to turn")


def test_serve_counts_its_deliveries_by_door_and_answer(
    redis_url: str, redis_client: Any, tmp_path: Path
) -> None:
    metrics_port = free_port()
    with IntakeServer(intake_config(redis_url), tmp_path, metrics_port=metrics_port) as server:
        for ticket in ("1", "2"):
            body = json.dumps({"ticket_id": ticket, "session_id": f"d-{ticket}"}).encode()
            requests.post(
                server.url + "/webhooks/zendesk", data=body, headers=zendesk_headers(body)
            )
        forged = zendesk_headers(b"{}", secret="c29tZW9uZSBlbHNlcyBzZWNyZXQ=")
        requests.post(server.url + "/webhooks/zendesk", data=b"{}", headers=forged)
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert requests.get(server.url + "/metrics", timeout=5).status_code == 404
    door = "/webhooks/zendesk"
    assert total(samples, "replay_attach_intake_deliveries_total", door=door, status="202") == 2
    assert total(samples, "replay_attach_intake_deliveries_total", door=door, status="401") == 1
    assert total(samples, "replay_attach_queue_depth") == 2


def test_status_json_is_one_object(cli_env: dict[str, str], redis_client: Any) -> None:
    result = run_cli(cli_env, "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["queued"] == 0 and data["failed"] == 0 and data["redis"] == "REDIS_URL"
    assert set(data) >= {"in_flight", "scheduled_retries", "active_links", "server"}
    selected = json.loads(run_cli(cli_env, "status", "--json", "--zendesk-ticket", "101").stdout)
    assert selected == {"attachments": [], "failed": [], "retries": []}


def test_a_metrics_port_already_taken_is_refused_naming_it(cli_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(cli_env, "worker", "-p", "1", "--metrics-port", str(port), timeout=60)
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr


def test_serve_refuses_a_metrics_port_already_taken_naming_it(cli_env: dict[str, str]) -> None:
    import socket

    data = yaml.safe_load(Path(cli_env["REPLAY_ATTACH_CONFIG"]).read_text())
    data["intake"] = {"tokens": "intake-token-one-0123456789"}
    path = Path(cli_env["REPLAY_ATTACH_CONFIG"]).with_name("serve-config.yaml")
    path.write_text(yaml.safe_dump(data))
    env = {**cli_env, "REPLAY_ATTACH_CONFIG": str(path)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            env, "serve", "--port", str(free_port()), "--metrics-port", str(port), timeout=60
        )
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
