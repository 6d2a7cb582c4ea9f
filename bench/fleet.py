"""The benchmark's moving parts: Redis, worker fleets as subprocesses, the events, counting finished jobs."""

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

import psutil
import redis
from tqdm import tqdm

#: The checkout this benchmark belongs to, importable from it even when not installed.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.app import Sandbox  # noqa: E402
from worker.attach.events import parse_event  # noqa: E402


@contextmanager
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from worker.embedded_redis import temporary_embedded_redis

    with temporary_embedded_redis(prefix="ra-bench-") as embedded:
        yield embedded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(box: Sandbox, url: str, zendesk_budget: int | None = None) -> dict[str, str]:
    """The environment that points the shipped config.yaml at the sandbox."""
    env = {**os.environ, **box.env(), "REDIS_URL": url}
    env.pop("REPLAY_ATTACH_CONFIG", None)
    # Off unless a section measures it: fleets in turn must not compete for one port.
    env.setdefault("REPLAY_ATTACH_METRICS_PORT", "0")
    if zendesk_budget:
        env["ZENDESK_REQUESTS_PER_MINUTE"] = str(zendesk_budget)
    return env


class WorkerFleet:
    """``replay-attach worker -p P -t T`` as a subprocess, with its CPU and memory."""

    def __init__(
        self, env: dict[str, str], processes: int, threads: int, checkout: Path | None = None
    ) -> None:
        # ``python -m worker`` imports the package from its working directory
        # first: another checkout's directory runs that checkout's worker.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "-p", str(processes), "-t", str(threads)],
            env=env,
            cwd=checkout or ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes = processes

    def tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=False))
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.tree():
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def max_rss_mb(self) -> float:
        sizes = []
        for p in self.workers():
            try:
                sizes.append(p.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                pass
        return max(sizes, default=0.0)

    def wait_ready(self, client: redis.Redis, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                len(self.workers()) >= self.processes
                and client.zcard("dramatiq:__heartbeats__") >= self.processes
            ):
                time.sleep(0.5)
                return
            time.sleep(0.1)
        raise RuntimeError("workers did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def zendesk_events(count: int, offset: int) -> Iterator[Any]:
    for i in range(count):
        yield parse_event(
            {"session_id": f"bench-{offset + i}", "zendesk_ticket": 1000 + (offset + i) % 500}
        )


def jira_events(count: int, offset: int) -> Iterator[Any]:
    for i in range(count):
        yield parse_event(
            {"session_id": f"bench-{offset + i}", "jira_issue": f"BENCH-{1 + (offset + i) % 500}"}
        )


#: Per kind of job: its events, and the last request of a job (one per finished job).
JOB_KINDS: dict[str, tuple[Callable[[int, int], Iterator[Any]], str, str, str]] = {
    "zendesk": (zendesk_events, "zendesk", "PUT", r"/tags\.json$"),
    "jira": (jira_events, "jira", "POST", r"/comment$"),
}


class FinishedJobs:
    """Counts finished jobs by the last request each makes, reading only new requests."""

    def __init__(self, box: Sandbox, kind: str) -> None:
        _, vendor, self.method, regex = JOB_KINDS[kind]
        self.double = getattr(box, vendor)
        self.pattern = re.compile(regex)
        self.position = 0
        #: When each job's last request arrived at the double (time.time()), in order.
        self.times: list[float] = []

    def poll(self) -> int:
        new, self.position = self.double.calls_since(self.position)
        last = [r.time for r in new if r.method == self.method and self.pattern.search(r.path)]
        self.times += last
        return len(self.times)

    def steady_rate(self) -> float:
        """Jobs/s between the 10th and the 90th percentile of finishing times.

        Leaves out the start (idle workers' first poll, the queue filling) and
        the drain (the last jobs finishing while most threads are idle): both
        last the same whatever the number of jobs, so they say how long the
        run was rather than how fast the workers go.
        """
        times = sorted(self.times)
        low, high = len(times) // 10, len(times) * 9 // 10
        return (high - low) / (times[high] - times[low])

    def wait_for(self, expected: int, bar: tqdm | None = None, timeout: float = 900) -> float:
        deadline = time.monotonic() + timeout
        seen = len(self.times)
        while time.monotonic() < deadline:
            done = self.poll()
            if bar is not None and done > seen:
                bar.update(done - seen)
            seen = done
            if done >= expected:
                return time.monotonic()
            time.sleep(0.05)
        raise RuntimeError(f"only {seen} of {expected} jobs finished")


def reset(box: Sandbox, client: redis.Redis) -> None:
    client.flushdb()
    for double in box.vendors:
        double.reset_requests()


def endpoint(path: str) -> str:
    path = re.sub(r"/session_recordings/[^/]+(/|$)", r"/session_recordings/{id}\1", path)
    path = re.sub(r"/tickets/\d+", "/tickets/{id}", path)
    path = re.sub(r"/projects/\d+/", "/projects/{id}/", path)
    return re.sub(r"/issue/[^/]+(/|$)", r"/issue/{key}\1", path)
