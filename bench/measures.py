"""Each measurement of the benchmark: one run against the sandbox, returning its figures."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import redis
from fleet import (
    JOB_KINDS,
    ROOT,
    FinishedJobs,
    WorkerFleet,
    endpoint,
    reset,
    worker_env,
    zendesk_events,
)
from tqdm import tqdm

from sandbox.app import Sandbox
from worker.config import DEFAULT_CONFIG_PATH, load_config
from worker.jobs.producer import enqueue_bug_report


def rate_limit_run(
    box: Sandbox, client: redis.Redis, url: str, app: Any, budget: int
) -> dict[str, float]:
    """The sandbox's Zendesk enforces ``budget``/minute; so does the worker fleet's shared budget."""
    reset(box, client)
    config = worker_env(box, url, zendesk_budget=budget)
    box.zendesk.rate_limit_per_minute = budget
    fleet = WorkerFleet(config, 2, 8)
    try:
        fleet.wait_ready(client)
        app.queue.enqueue_many(zendesk_events(budget * 2, 0))  # more than a minute's worth
        start = time.monotonic()
        for _ in tqdm(range(75), desc="rate limit", unit="s", leave=False):
            time.sleep(1)
    finally:
        fleet.stop()
        box.zendesk.rate_limit_per_minute = None
    calls = box.zendesk.calls()
    wall = time.time() - time.monotonic()
    window = [r for r in calls if start + 10 <= r.time - wall < start + 70]
    admitted = sum(1 for r in window if r.status != 429 and r.fault != "rate_limited")
    refused = sum(1 for r in calls if r.status == 429)
    return {"used": admitted / budget, "refused": refused / max(1, len(calls)), "calls": len(calls)}


def throughput_run(
    box: Sandbox,
    client: redis.Redis,
    config: dict[str, str],
    app: Any,
    processes: int,
    threads: int,
    jobs: int,
    latency: float,
    progress: bool,
    kind: str = "zendesk",
    checkout: Path | None = None,
) -> dict[str, Any]:
    reset(box, client)
    events = JOB_KINDS[kind][0]
    finished = FinishedJobs(box, kind)
    fleet = WorkerFleet(config, processes, threads, checkout)
    try:
        fleet.wait_ready(client)
        cpu_before = fleet.cpu_seconds()
        # The doubles stamp each request's arrival with time.time(): the run ends
        # when the last job's last call is answered, its arrival plus the latency
        # (not when the next poll below happens to see it).
        start = time.time()
        app.queue.enqueue_many(events(jobs, 0))
        with tqdm(
            total=jobs,
            desc=f"{kind} {processes}x{threads}",
            unit="job",
            disable=not progress,
            leave=False,
        ) as bar:
            finished.wait_for(jobs, bar)
        end = max(finished.times) + latency
        cpu = fleet.cpu_seconds() - cpu_before
        rss = fleet.max_rss_mb()
    finally:
        fleet.stop()
    calls = Counter(f"{r.method} {endpoint(r.path)}" for d in box.vendors for r in d.calls())
    calls_per_job = sum(calls.values()) / jobs
    rate = jobs / (end - start)
    bound = processes * threads / (calls_per_job * latency)
    return {
        "rate": rate,
        "steady_rate": finished.steady_rate(),
        "bound": bound,
        "cpu_ms_per_job": 1000 * cpu / jobs,
        "rss_mb": rss,
        "calls_per_job": calls_per_job,
        "calls": dict(calls),
    }


def soak_run(
    box: Sandbox, client: redis.Redis, config: dict[str, str], app: Any, jobs: int
) -> dict[str, float]:
    """``jobs`` Zendesk jobs through 2x8 workers, sampling each worker's resident memory."""
    reset(box, client)
    finished = FinishedJobs(box, "zendesk")
    fleet = WorkerFleet(config, 2, 8)
    samples: list[tuple[int, float]] = []
    try:
        fleet.wait_ready(client)
        idle = fleet.max_rss_mb()
        app.queue.enqueue_many(zendesk_events(jobs, 0))
        step = max(1, jobs // 20)
        next_sample = step
        deadline = time.monotonic() + 1800
        with tqdm(total=jobs, desc="memory soak", unit="job", leave=False) as bar:
            done = 0
            while done < jobs and time.monotonic() < deadline:
                now_done = finished.poll()
                bar.update(now_done - done)
                done = now_done
                if done >= next_sample:
                    samples.append((done, fleet.max_rss_mb()))
                    next_sample += step
                time.sleep(0.2)
        if done < jobs:
            raise RuntimeError(f"only {done} of {jobs} jobs finished")
    finally:
        fleet.stop()
    # "Warm": after a tenth of the jobs, once every thread has built its clients.
    warm = next(rss for count, rss in samples if count >= jobs // 10)
    return {
        "idle": idle,
        "warm": warm,
        "warm_jobs": float(next(c for c, _ in samples if c >= jobs // 10)),
        "end": samples[-1][1],
        "max": max(rss for _, rss in samples),
    }


def single_thread_cpu(
    box: Sandbox, client: redis.Redis, config: dict[str, str], jobs: int, latency: float
) -> float:
    """CPU (ms) of one attach job run in this thread, outside dramatiq, jobs back to back.

    The baseline for the fleet's CPU per job: the same job, the same doubles and
    Redis, without the worker's processes, threads and queue. With ``latency``
    the thread sleeps through every call, as a worker thread does, and wakes
    with cold caches; with 0 it runs hot.
    """
    from worker.attach.services import build_services
    from worker.attach.use_case import attach_replay

    reset(box, client)
    services = build_services(load_config(DEFAULT_CONFIG_PATH, env=config), client)
    events = list(zendesk_events(jobs + 20, 0))
    saved = box.zendesk.latency
    box.set_latency(latency)
    try:
        for event in events[:20]:  # connections, scripts, caches
            attach_replay(event, services)
        start = time.thread_time()
        for event in events[20:]:
            attach_replay(event, services)
        return 1000 * (time.thread_time() - start) / jobs
    finally:
        box.set_latency(saved)


def latency_runs(
    box: Sandbox,
    client: redis.Redis,
    config: dict[str, str],
    app: Any,
    latency: float,
    samples: int,
) -> tuple[list[float], float]:
    """Pick-up latencies beyond the API time, and an idle worker's CPU (ms per second)."""
    reset(box, client)
    finished = FinishedJobs(box, "zendesk")
    fleet = WorkerFleet(config, 1, 4)
    extra = []
    try:
        fleet.wait_ready(client)
        time.sleep(2)  # past start-up
        cpu_before, idle_start = fleet.cpu_seconds(), time.monotonic()
        time.sleep(10)
        idle_ms_per_s = 1000 * (fleet.cpu_seconds() - cpu_before) / (time.monotonic() - idle_start)
        for i in range(samples):
            time.sleep(1.5)  # let the worker go idle and its polling back off
            before = finished.poll()
            start = time.time()
            enqueue_bug_report(session_id=f"lat-{i}", zendesk_ticket=1000 + i, queue=app.queue)
            finished.wait_for(before + 1, timeout=30)
            # The job is done when its last call (the tag) is answered: the double recorded
            # when that call arrived, and answers it `latency` later. (Polling for it would
            # add up to a polling interval to every sample.)
            (last,) = box.zendesk.calls("PUT", rf"/tickets/{1000 + i}/tags\.json$")
            extra.append(last.time + latency - start - 3 * latency)
    finally:
        fleet.stop()
    return extra, idle_ms_per_s


def enqueue_figures(
    app: Any, client: redis.Redis, config: dict[str, str], events: int
) -> dict[str, float]:
    client.flushdb()
    start = time.monotonic()
    app.queue.enqueue_many(zendesk_events(events, 0))
    file_rate = events / (time.monotonic() - start)
    client.flushdb()
    # The producers' function, one event at a time.
    n = 2000
    start = time.monotonic()
    for i in range(n):
        enqueue_bug_report(session_id=f"p-{i}", zendesk_ticket=1 + i, queue=app.queue)
    per_event_ms = 1000 * (time.monotonic() - start) / n
    client.flushdb()
    # Memory of the command line for a small and a 10x larger file: constant memory means ~1.0.
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="ra-bench-") as tmp:
        for size in (events // 10, events):
            path = Path(tmp) / f"{size}.jsonl"
            with path.open("w") as out:
                for i in range(size):
                    out.write(
                        json.dumps({"session_id": f"f-{i}", "zendesk_ticket": 1 + i % 1000}) + "\n"
                    )
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "enqueue", "--file", str(path)],
                env=config,
                stdout=subprocess.DEVNULL,
            )
            peak = 0
            ps = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    peak = max(peak, ps.memory_info().rss)
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.02)
            peaks[size] = (peak / 2**20, size / (time.monotonic() - start))
            client.flushdb()
    small, large = peaks[events // 10], peaks[events]
    return {
        "enqueue_many_rate": file_rate,
        "producer_ms": per_event_ms,
        "cli_rate": large[1],
        "cli_rss_small": small[0],
        "cli_rss_large": large[0],
    }


def enqueue_startup(
    client: redis.Redis, config: dict[str, str], runs: int, checkout: Path | None = None
) -> float:
    """Median seconds from starting ``replay-attach enqueue`` to its message in Redis.

    What a shell script pays per event: the interpreter, the imports, the
    configuration, the connection and the write. ``python -m worker`` in
    ``checkout``'s directory runs that checkout's command line.

    The checkout's modules are compiled to bytecode first, as installing a
    wheel does: with ``PYTHONDONTWRITEBYTECODE`` set (as on some development
    machines) every run would otherwise compile them again, a cost no
    installed ``replay-attach`` pays.
    """
    directory = checkout or ROOT
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "worker", "integrations"],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    queue = "dramatiq:replay-attach"
    took = []
    ticket = ("--zendesk-ticket", "1")
    for i in range(runs):
        client.delete(queue, queue + ".msgs")
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "enqueue", "--session-id", f"cli-{i}", *ticket],
            env=config,
            cwd=directory,
            stdout=subprocess.DEVNULL,
        )
        while not client.llen(queue) and proc.poll() is None:
            time.sleep(0.001)
        took.append(time.monotonic() - start)
        if proc.wait() != 0:
            raise RuntimeError("replay-attach enqueue failed")
    client.delete(queue, queue + ".msgs")
    return statistics.median(took)
