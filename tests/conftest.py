"""Shared fixtures: a real Redis, real-HTTP vendor doubles, configs and in-process workers.

Redis: ``REPLAY_ATTACH_TEST_REDIS_URL`` or ``REDIS_URL`` selects a real server
(database 15 is used and flushed before each test, never another; under pytest-xdist
each worker process has its own: 15 for gw0, 14 for gw1, and so on); otherwise the
embedded Redis is started in a temporary directory and removed afterwards (one per
xdist worker).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import yaml
from dramatiq import Worker

from worker.app import App, create_app
from worker.config import Config, load_config

TEST_DB = 15
# Databases 15 down to 1: database 0 is left to whatever else uses the server.
MAX_XDIST_WORKERS = TEST_DB

# Worker processes the tests start serve no metrics unless a test asks for a free port: 9191
# (the default, or what an operator's shell exports) may be a running worker's. Their
# environments are copied from this one.
os.environ["REPLAY_ATTACH_METRICS_PORT"] = "0"


def _test_db() -> int:
    """This process's database: xdist workers flush before each test, so each needs its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    if index >= MAX_XDIST_WORKERS:
        raise pytest.UsageError(f"at most {MAX_XDIST_WORKERS} xdist workers: one database each")
    return TEST_DB - index


def _real_redis_url() -> str | None:
    url = os.environ.get("REPLAY_ATTACH_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{_test_db()}", parts.query, ""))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = _real_redis_url()
    if url is not None:
        yield url
        return
    from worker.embedded_redis import temporary_embedded_redis

    with temporary_embedded_redis(prefix="ra-test-") as url:
        yield url


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture()
def sandbox() -> Iterator[Any]:
    from sandbox.app import Sandbox

    with Sandbox() as box:
        box.seed_demo_data()
        yield box


def config_data(box: Any, **overrides: Any) -> dict[str, Any]:
    """A configuration pointing at the sandbox doubles, with fast retries for tests."""
    env = box.env()
    data: dict[str, Any] = {
        "posthog": {
            "host": env["POSTHOG_HOST"],
            "project_id": int(env["POSTHOG_PROJECT_ID"]),
            "personal_api_key": env["POSTHOG_PERSONAL_API_KEY"],
        },
        "zendesk": {
            "url": env["ZENDESK_URL"],
            "email": env["ZENDESK_EMAIL"],
            "api_token": env["ZENDESK_API_TOKEN"],
        },
        "jira": {
            "url": env["JIRA_URL"],
            "email": env.get("JIRA_EMAIL"),
            "api_token": env.get("JIRA_API_TOKEN"),
        },
        "http": {"connect_timeout_seconds": 2, "read_timeout_seconds": 2},
        "retry": {"min_backoff_seconds": 0.05, "max_backoff_seconds": 0.2},
        "broker": {"heartbeat_timeout_seconds": 5},
        "worker": {"idle_poll_ms": 50},
    }
    for dotted, value in overrides.items():
        section, _, key = dotted.partition("__")
        data.setdefault(section, {})
        if value is None and key in data[section]:
            del data[section][key]
        else:
            data[section][key] = value
    return data


@pytest.fixture()
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(data: dict[str, Any]) -> Config:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_config(path, env={})

    return make


@pytest.fixture()
def make_app(
    redis_url: str, redis_client: redis.Redis, make_config: Callable[..., Config]
) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(data: dict[str, Any]) -> App:
        app = create_app(make_config(data), url=redis_url)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.broker.close()


class RunningWorker:
    def __init__(self, app: App, threads: int = 4) -> None:
        self.app = app
        self.worker = Worker(app.broker, worker_threads=threads, worker_timeout=50)

    def __enter__(self) -> RunningWorker:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until nothing is queued, scheduled or in flight."""
        from worker.jobs.scheduler import scheduled_count

        deadline = time.monotonic() + timeout
        while True:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            self.app.broker.join(self.app.actor.queue_name, timeout=left_ms)
            self.worker.join()
            # A retry may be scheduled while the queue looks empty.
            if (
                scheduled_count(self.app.redis) == 0
                and self.app.broker.do_qsize(self.app.actor.queue_name) == 0
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("jobs still scheduled or queued")
            time.sleep(0.05)


@pytest.fixture()
def run_worker() -> Callable[..., RunningWorker]:
    return RunningWorker


@pytest.fixture()
def cli_env(
    sandbox: Any, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> dict[str, str]:
    """The environment of a ``replay-attach`` command pointed at the sandbox and test Redis."""
    data = config_data(sandbox)
    data["broker"]["redis_url"] = redis_url
    # Not make_config's file: a test may use both.
    path = tmp_path / "cli-config.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_URL", "POSTHOG_", "ZENDESK_", "JIRA_"))
    }
    env["REPLAY_ATTACH_CONFIG"] = str(path)
    return env
