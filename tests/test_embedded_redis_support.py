"""Shared by the embedded Redis tests: process probes, waits, and the data_dir/users fixtures.

No tests here. Those modules load it as a pytest plugin (``pytest_plugins``) for the fixtures;
its name matches ``test_*.py`` so that pytest rewrites its asserts, as in a test module.

Every test gets its own short data directory under /tmp (unix socket paths are limited to 107
bytes) and leaves no process and no directory behind, even when it fails.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from worker.embedded_redis import EmbeddedRedis
from worker.embedded_redis.files import KEEPER_POLL_INTERVAL

TIMEOUT = 15.0  # upper bound for anything we poll for

# To check that something does NOT happen: long enough for the keeper to look a few times.
KEEPER_POLLS = 3 * KEEPER_POLL_INTERVAL


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def is_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """redis-server processes serving data_dir (redis chdirs into its `dir`)."""
    found = []
    for proc in psutil.process_iter(["name", "cwd", "status"]):
        info = proc.info
        if (
            info["name"] == "redis-server"
            and info["cwd"] == str(data_dir)
            and info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def keeper_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            cmdline[1:] == ["-m", "worker.embedded_redis.keeper", "keeper", str(data_dir)]
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def keeper_pid(data_dir: Path) -> int:
    return int((data_dir / "keeper.pid").read_text())


def assert_stops(data_dir: Path, *pids: int) -> None:
    """No keeper, no redis-server for data_dir remains; the runtime files are cleaned up."""
    wait_for(lambda: not any(is_running(pid) for pid in pids), f"processes {pids} to exit")
    wait_for(lambda: not server_processes(data_dir), "redis-server to exit")
    wait_for(lambda: not keeper_processes(data_dir), "the keeper to exit")
    for name in ("redis.sock", "redis.pid", "keeper.pid"):
        assert not (data_dir / name).exists(), name


def assert_serving(data_dir: Path, url: str, pid: int) -> None:
    assert server_pid(url) == pid
    assert [p.pid for p in server_processes(data_dir)] == [pid]
    assert len(keeper_processes(data_dir)) == 1


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ra-")).resolve()
    try:
        yield path
    finally:
        # A failed test may leave a keeper behind: give it a moment to stop on its own, then
        # kill what is left (redis-server too), so no test leaks a process or a directory.
        deadline = time.monotonic() + 3
        while (keeper_processes(path) or server_processes(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = keeper_processes(path) + server_processes(path)
        for proc in leftovers:
            proc.kill()
        psutil.wait_procs(leftovers, timeout=5)
        shutil.rmtree(path, ignore_errors=True)
        assert not leftovers, f"processes left running: {leftovers}"


@pytest.fixture
def users() -> Iterator[list[EmbeddedRedis]]:
    """In-process users to release at the end, even if the test fails half-way."""
    created: list[EmbeddedRedis] = []
    yield created
    for user in created:
        user.release()
