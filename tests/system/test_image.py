"""The container image, built from a clean copy of the project and run as an operator would.

Needs a Docker engine: ``./dev image-test`` (``pytest -m image``). Redis, the worker and
``serve`` run in containers on the host's network, where the sandbox's doubles listen on
127.0.0.1 in this process, so the test reads exactly what landed on each ticket.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from sandbox.app import Sandbox
from tests.containers import (
    ROOT,
    base_image,
    build_image,
    container,
    docker,
    image_size,
    logs,
)
from tests.scenarios import assert_attached_exactly_once, free_port, notes_on, wait_for

# The first test also makes the base images and builds the image (its module fixture).
pytestmark = [pytest.mark.image, pytest.mark.timeout(1200)]

TAG = "replay-attach:test"
TOKEN = "image-test-intake-token-0123456789"
#: What every product container runs with: as it would in Kubernetes.
HARDENED = (
    "--network=host",
    "--read-only",
    "--tmpfs=/tmp",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)
MB = 1_000_000


@dataclass(frozen=True)
class Image:
    tag: str
    base: str
    build_seconds: float


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    base = base_image("python")
    seconds = build_image(TAG, base, tmp_path_factory.mktemp("context"))
    return Image(TAG, base, seconds)


@pytest.fixture()
def redis_url(image: Image) -> Iterator[str]:
    """A Redis server in a container of the compose file's Redis image, on a free port."""
    port = free_port()
    with container(
        f"ra-test-redis-{port}",
        "--network=host",
        base_image("redis"),
        *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
    ):
        url = f"redis://127.0.0.1:{port}/0"

        def answers() -> bool:
            try:
                return bool(redis.Redis.from_url(url).ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, 30, "the Redis container")
        yield url


def run(image: Image, *args: str, env: dict[str, str] | None = None) -> Any:
    flags = [f"--env={name}={value}" for name, value in (env or {}).items()]
    return docker("run", "--rm", *HARDENED, *flags, image.tag, *args, check=False, timeout=300)


def test_the_image_adds_under_100_mb_to_its_base(image: Image, capsys: Any) -> None:
    added = image_size(image.tag) - image_size(image.base)
    with capsys.disabled():
        print(
            f"\nimage {image.tag}: {image_size(image.tag) / MB:.0f} MB, "
            f"{added / MB:.0f} MB over its base {image.base} "
            f"({image_size(image.base) / MB:.0f} MB); built in {image.build_seconds:.0f} s"
        )
    assert added < 100 * MB


def test_the_image_runs_as_a_user_that_is_not_root(image: Image) -> None:
    config = json.loads(docker("image", "inspect", image.tag).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["replay-attach"]
    assert config["Labels"]["org.opencontainers.image.licenses"] == "GPL-3.0-or-later"
    who = docker("run", "--rm", "--entrypoint=id", image.tag, "-u").stdout.strip()
    assert who == "10001"


def test_the_image_holds_no_compiler_installer_cache_or_tests(image: Image) -> None:
    script = (
        "command -v gcc cc make; ls /opt/replay-attach/bin/pip* /root/.cache 2>/dev/null; "
        "python3 -c 'import tests' 2>/dev/null && echo tests; exit 0"
    )
    found = docker("run", "--rm", "--user=0", "--entrypoint=sh", image.tag, "-c", script)
    assert found.stdout.strip() == ""


def test_its_commands_answer_and_its_demo_exits_0_on_a_read_only_root(image: Image) -> None:
    assert run(image, "--help").returncode == 0
    demo = run(image, "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo finished" in demo.stdout


def test_worker_and_serve_refuse_to_start_without_redis_url(image: Image) -> None:
    env = {
        "POSTHOG_PROJECT_ID": "1",
        "POSTHOG_PERSONAL_API_KEY": "phx_image_test",
        "REPLAY_ATTACH_INTAKE_TOKENS": TOKEN,
    }
    for command in (["worker"], ["serve", "--host", "0.0.0.0", "--port", "8080"]):
        result = run(image, *command, env=env)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("replay-attach: REDIS_URL is not set"), result.stderr
        assert result.stderr.count("\n") == 1
    # The vendor credentials are the worker's alone: `check` names the first one missing.
    check = run(image, "check")
    assert check.returncode == 2
    assert "posthog.project_id (from ${POSTHOG_PROJECT_ID}): is required" in check.stderr


def worker_env(box: Sandbox, redis_url: str) -> dict[str, str]:
    vendors = {k: v for k, v in box.env().items() if k.startswith(("POSTHOG_", "ZENDESK_"))}
    return {**vendors, "REDIS_URL": redis_url, "REPLAY_ATTACH_METRICS_PORT": str(free_port())}


def start_worker(image: Image, name: str, box: Sandbox, redis_url: str) -> Any:
    flags = [f"--env={k}={v}" for k, v in worker_env(box, redis_url).items()]
    return container(name, *HARDENED, *flags, image.tag, "worker", "-p", "1", "-t", "4")


def report(serve_url: str, ticket: int) -> None:
    answer = requests.post(
        f"{serve_url}/v1/bug-reports",
        json={"session_id": f"image-{ticket}", "zendesk_ticket": ticket},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text


def test_a_report_sent_to_serve_lands_once_and_a_stopped_worker_loses_nothing(
    image: Image, redis_url: str, capsys: Any
) -> None:
    tickets = {ticket: f"image-{ticket}" for ticket in range(2001, 2041)}
    port = free_port()
    serve_url = f"http://127.0.0.1:{port}"
    # serve gets Redis and its door's token: no vendor credential at all.
    with (
        Sandbox() as box,
        container(
            f"ra-test-serve-{port}",
            *HARDENED,
            f"--env=REDIS_URL={redis_url}",
            f"--env=REPLAY_ATTACH_INTAKE_TOKENS={TOKEN}",
            image.tag,
            *("serve", "--host", "127.0.0.1", "--port", str(port)),
        ) as serve,
    ):
        for ticket in tickets:
            box.zendesk.add_ticket(ticket)

        def ready() -> bool:
            try:
                return requests.get(f"{serve_url}/readyz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, 60, f"serve's /readyz ({logs(serve)})")
        check = run(image, "check", env=worker_env(box, redis_url))
        assert check.returncode == 0, check.stdout + check.stderr
        assert "PostHog: ok" in check.stdout and "Zendesk: ok" in check.stdout
        with start_worker(image, f"ra-test-worker-1-{port}", box, redis_url) as first:
            report(serve_url, 2001)
            wait_for(lambda: len(notes_on(box, 2001)) == 1, 60, f"the first note ({logs(first)})")

            # Every call now takes a while, so jobs are in flight when docker stop comes.
            box.set_latency(0.5)
            for ticket in list(tickets)[1:]:
                report(serve_url, ticket)

            def landed() -> int:
                return sum(1 for ticket in tickets if notes_on(box, ticket))

            wait_for(lambda: landed() >= 4, 90, f"notes during the batch ({logs(first)})")
            start = time.monotonic()
            docker("stop", "--time", "10", first, timeout=60)
            stopped_after = time.monotonic() - start
            state = json.loads(docker("inspect", first).stdout)[0]["State"]
            first_log = logs(first)
            before_restart = landed()
        with capsys.disabled():
            print(
                f"\ndocker stop: the worker exited {state['ExitCode']} after {stopped_after:.1f} s "
                f"with {before_restart} of {len(tickets)} notes landed"
            )
        # Stopped by itself within the grace period (137 would be docker's SIGKILL).
        assert state["ExitCode"] == 0, first_log
        assert stopped_after < 10, (stopped_after, first_log)
        assert "Traceback" not in first_log, first_log
        assert before_restart < len(tickets), "the batch ended before the stop: none in flight"

        with start_worker(image, f"ra-test-worker-2-{port}", box, redis_url) as second:
            box.set_latency(0)
            wait_for(lambda: landed() == len(tickets), 120, f"every note ({logs(second)})")
            time.sleep(1)  # a duplicate would land by now
        assert_attached_exactly_once(box, tickets, {})


def compose_command() -> list[str]:
    """``docker compose`` (v2) when installed, else ``docker-compose`` (1.29)."""
    if docker("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


def compose(project: str, env: dict[str, str], *args: str, timeout: float = 300) -> Any:
    return subprocess.run(
        [*compose_command(), "--project-name", project, "--env-file", env["ENV_FILE"], *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_compose_with_the_sandbox_profile_lands_a_replay_on_a_ticket(
    image: Image, tmp_path: Path, capsys: Any
) -> None:
    # The documented steps (README, docs/operations.md): .env from .env.example, then up with
    # the sandbox profile.
    env_file = tmp_path / ".env"
    shutil.copy(ROOT / ".env.example", env_file)
    env = {
        "ENV_FILE": str(env_file),
        "REPLAY_ATTACH_IMAGE": image.tag,
        "REDIS_IMAGE": base_image("redis"),
        "REPLAY_ATTACH_SERVE_ADDRESS": f"127.0.0.1:{free_port()}",
        "SANDBOX_CONSOLE_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    project = f"ra-test-{free_port()}"
    for profile in ([], ["--profile", "sandbox"]):
        checked = compose(project, env, *profile, "config", "--quiet")
        assert checked.returncode == 0, checked.stderr
    try:
        started = compose(project, env, "--profile", "sandbox", "up", "--detach", "--no-build")
        assert started.returncode == 0, started.stderr
        report = compose(project, env, "ps", "--quiet", "sandbox-report").stdout.strip()

        def exited() -> bool:
            state = json.loads(docker("inspect", report).stdout)[0]["State"]
            return state["Status"] == "exited"

        wait_for(exited, 240, "the sandbox-report service to finish")
        state = json.loads(docker("inspect", report).stdout)[0]["State"]
        output = logs(report)
        assert state["ExitCode"] == 0, output + compose(project, env, "logs").stdout[-5000:]
        assert "Zendesk ticket 101 now has the replay" in output
        with capsys.disabled():
            print(f"\n{' '.join(compose_command())}, sandbox profile: {output.strip()}")
    finally:
        compose(project, env, "--profile", "sandbox", "down", "--volumes", timeout=120)
