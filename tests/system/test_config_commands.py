"""The commands started as processes: each refuses to start without the settings it needs, and
needs no more than those."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *command],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["check"],
        ["revoke", "--session-id", "s"],
        ["status", "--session-id", "s"],
    ],
)
def test_commands_that_need_the_posthog_project_refuse_to_start_with_exit_2(
    command: list[str], tmp_path: Path
) -> None:
    result = _run(command, {"POSTHOG_PERSONAL_API_KEY": "phx_secret_value", "HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert "posthog.project_id (from ${POSTHOG_PROJECT_ID}): is required" in result.stderr
    assert "phx_secret_value" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["worker"], ["check"], ["revoke", "--session-id", "s"]])
def test_commands_that_talk_to_posthog_refuse_to_start_without_its_key(
    command: list[str], tmp_path: Path
) -> None:
    result = _run(command, {"POSTHOG_PROJECT_ID": "7", "HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert (
        "posthog.personal_api_key (from ${POSTHOG_PERSONAL_API_KEY}): is required" in result.stderr
    )


@pytest.mark.parametrize(
    "command",
    [
        ["enqueue", "--session-id", "s", "--zendesk-ticket", "1"],
        ["failed", "list"],
        ["status"],
    ],
)
def test_producers_and_queue_commands_need_no_vendor_credential(
    command: list[str], redis_url: str, redis_client: object
) -> None:
    result = _run(command, {"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr


def test_serve_starts_with_only_redis_and_a_door_secret(
    redis_url: str, redis_client: object
) -> None:
    from tests.scenarios import free_port, wait_for

    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url}
    env["REPLAY_ATTACH_INTAKE_TOKENS"] = token = "intake-token-0123456789"
    server = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                return requests.get(url + "/readyz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, 30, "serve to answer /readyz")
        answer = requests.post(
            url + "/v1/bug-reports",
            json={"session_id": "s-1", "zendesk_ticket": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert answer.status_code == 202, answer.text
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_python_producer_needs_no_vendor_credential(
    redis_url: str, redis_client: object
) -> None:
    code = "import worker; print(worker.enqueue_bug_report(session_id='s-1', zendesk_ticket=1))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url},
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
