"""Benchmark: how close replay-attach gets to its I/O bound.

Runs the real worker (``replay-attach worker`` processes) against the sandbox
doubles with injected latency and prints figures, each as a ratio to a bound
or to a baseline measured in the same run. Not a test: it never asserts a
time; it reports medians of several runs.

    .venv/bin/python bench/run.py            # full run (several minutes)
    .venv/bin/python bench/run.py --quick    # smaller, for a first look
    .venv/bin/python bench/run.py --only throughput --curve 2x8 --baseline /tmp/old
                                             # against another checkout, in turn

Redis: ``REDIS_URL`` if set, else the embedded Redis in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import redis
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.app import Sandbox  # noqa: E402
from worker.app import create_app  # noqa: E402
from worker.attach.events import parse_event  # noqa: E402
from worker.config import DEFAULT_CONFIG_PATH, load_config  # noqa: E402
from worker.jobs.producer import enqueue_bug_report  # noqa: E402


@contextmanager
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from worker.embedded_redis import temporary_embedded_redis

    with temporary_embedded_redis(prefix="ra-bench-") as embedded:
        yield embedded


def worker_env(box: Sandbox, url: str, zendesk_budget: int | None = None) -> dict[str, str]:
    """The environment that points the shipped config.yaml at the sandbox."""
    env = {**os.environ, **box.env(), "REDIS_URL": url}
    env.pop("REPLAY_ATTACH_CONFIG", None)
    if zendesk_budget:
        env["ZENDESK_REQUESTS_PER_MINUTE"] = str(zendesk_budget)
    return env


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
    calls = Counter(f"{r.method} {_endpoint(r.path)}" for d in box.vendors for r in d.calls())
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


def _endpoint(path: str) -> str:
    path = re.sub(r"/session_recordings/[^/]+/", "/session_recordings/{id}/", path)
    path = re.sub(r"/tickets/\d+", "/tickets/{id}", path)
    path = re.sub(r"/projects/\d+/", "/projects/{id}/", path)
    return re.sub(r"/issue/[^/]+/", "/issue/{key}/", path)


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
    """
    queue = "dramatiq:replay-attach"
    took = []
    ticket = ("--zendesk-ticket", "1")
    for i in range(runs):
        client.delete(queue, queue + ".msgs")
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "enqueue", "--session-id", f"cli-{i}", *ticket],
            env=config,
            cwd=checkout or ROOT,
            stdout=subprocess.DEVNULL,
        )
        while not client.llen(queue) and proc.poll() is None:
            time.sleep(0.001)
        took.append(time.monotonic() - start)
        if proc.wait() != 0:
            raise RuntimeError("replay-attach enqueue failed")
    client.delete(queue, queue + ".msgs")
    return statistics.median(took)


SECTIONS = ("throughput", "jira", "memory", "enqueue", "latency", "budget", "startup")


def print_throughput_row(label: str, results: list[dict[str, Any]], note: str = "") -> None:
    bound = results[0]["bound"]
    steady = statistics.median(r["steady_rate"] for r in results)
    whole = statistics.median(r["rate"] for r in results)
    cpu = statistics.median(r["cpu_ms_per_job"] for r in results)
    rss = max(r["rss_mb"] for r in results)
    print(
        f"   {label:<8} {bound:7.1f} {steady:8.1f} {steady / bound:7.1%} {whole:8.1f} "
        f"{whole / bound:7.1%} {cpu:11.2f} {rss:7.0f}{note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer jobs and runs")
    parser.add_argument(
        "--jobs",
        type=int,
        help="jobs per throughput run (default 2000, 600 with --quick); start-up and drain "
        "weigh less in the whole-run figure of a longer run",
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds per API call (default 0.05)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per setting; medians are printed")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help="sections to run, comma-separated, from: %(default)s",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="another checkout of replay-attach (e.g. `git worktree add /tmp/old v0.1`): its "
        "worker runs in turn with this one in each throughput setting, against the same doubles "
        "and Redis, on a row of its own",
    )
    parser.add_argument(
        "--curve",
        default="1x4,2x8,2x16,2x32",
        help="throughput settings, PROCESSESxTHREADS, comma-separated (default %(default)s)",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        parser.error(f"unknown sections {sorted(only - set(SECTIONS))}; choose from {SECTIONS}")
    jobs = args.jobs or (600 if args.quick else 2000)
    if jobs < 100:
        parser.error("--jobs: at least 100 (the steady rate leaves out the first and last tenth)")
    runs = 1 if args.quick else args.runs
    enqueue_events = 20_000 if args.quick else 100_000
    curve = [
        (int(p), int(t)) for p, t in (item.split("x") for item in args.curve.split(",") if item)
    ]

    with redis_url() as url, Sandbox(latency=args.latency, auto_create=True) as box:
        config = worker_env(box, url)
        app = create_app(load_config(DEFAULT_CONFIG_PATH, env=config), url=url)
        client = redis.Redis.from_url(url)
        print(
            f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; python {sys.version.split()[0]}; redis {'REDIS_URL' if os.environ.get('REDIS_URL') else 'embedded'}"
        )
        print(
            f"API latency {args.latency * 1000:.0f} ms per call; {jobs} Zendesk jobs per run; medians of {runs} run(s)\n"
        )

        if only & {"throughput", "jira"}:
            print(
                "1. Throughput against the I/O bound (processes x threads / (calls per job x latency))"
            )
            print(
                "   steady: between the 10th and 90th percentile of finishing times; "
                "whole run: from the first enqueue to the last job's last answer"
            )
            print(
                f"   {'setting':<8} {'bound':>7} {'steady':>8} {'ratio':>7} {'whole':>8} {'ratio':>7} {'CPU ms/job':>11} {'RSS MB':>7}"
            )
        last: dict[str, Any] = {}
        for processes, threads in curve if "throughput" in only else []:
            results: list[dict[str, Any]] = []
            baseline: list[dict[str, Any]] = []
            for _ in range(runs):  # in turn, so that the machine's drift hits both alike
                for checkout, into in ((None, results), (args.baseline, baseline)):
                    if into is baseline and args.baseline is None:
                        continue
                    into.append(
                        throughput_run(
                            box,
                            client,
                            config,
                            app,
                            processes,
                            threads,
                            jobs,
                            args.latency,
                            progress=True,
                            checkout=checkout,
                        )
                    )
            print_throughput_row(f"{processes}x{threads}", results)
            if baseline:
                print_throughput_row(
                    "baseline",
                    baseline,
                    f"   (CPU {statistics.median(r['cpu_ms_per_job'] for r in results) / statistics.median(r['cpu_ms_per_job'] for r in baseline):.2f}x the baseline's)",
                )
            if (processes, threads) == (2, 8):
                last = {
                    **results[0],
                    "cpu_median": statistics.median(r["cpu_ms_per_job"] for r in results),
                }

        jira_results = [
            throughput_run(
                box, client, config, app, 2, 8, jobs, args.latency, progress=True, kind="jira"
            )
            for _ in range(runs if "jira" in only else 0)
        ]
        if jira_results:
            print_throughput_row("2x8 Jira", jira_results, "   (remote link + comment)")

        if last or jira_results:
            print("\n2. Calls per job on the happy path (2x8 runs)")
        if last:
            for endpoint, count in sorted(last["calls"].items()):
                print(f"   {count / jobs:5.2f}  {endpoint}")
            print(
                f"   {last['calls_per_job']:5.2f}  total per Zendesk job "
                "(minimum with a tag: 3.00 = share + note + tag)"
            )
        if jira_results:
            for endpoint, count in sorted(jira_results[0]["calls"].items()):
                print(f"   {count / jobs:5.2f}  {endpoint}")
            print(
                f"   {jira_results[0]['calls_per_job']:5.2f}  total per Jira job "
                "(minimum: 3.00 = share + remote link + comment)"
            )

        soak_jobs = 5_000 if args.quick else 20_000
        if "memory" in only:
            print(
                "\n3. Worker CPU per job: the table's CPU column (bound 3 ms), against the same "
                "Zendesk job run in one thread, outside dramatiq"
            )
            hot = single_thread_cpu(box, client, config, 200 if args.quick else 1000, 0.0)
            cold = single_thread_cpu(box, client, config, 30 if args.quick else 100, args.latency)
            fleet_cpu = f"{last['cpu_median']:.2f} ms at 2x8 (median), " if last else ""
            print(
                f"   {fleet_cpu}one thread: {hot:.2f} ms back to back, {cold:.2f} ms with "
                f"{args.latency * 1000:.0f} ms per call (the thread sleeps through each call and "
                "wakes with cold caches, as worker threads do)"
            )
            print(
                f"   Memory over {soak_jobs:,} jobs "
                "(2x8, largest worker process; bound 100 MB, flat)"
            )
            soak = soak_run(box, client, config, app, soak_jobs)
            print(
                f"   idle {soak['idle']:.0f} MB; after {soak['warm_jobs']:,.0f} jobs {soak['warm']:.0f} MB; "
                f"after {soak_jobs:,} jobs {soak['end']:.0f} MB (growth {soak['end'] / soak['warm']:.2f}x "
                f"over the last {soak_jobs - soak['warm_jobs']:,.0f} jobs); "
                f"max {soak['max']:.0f} MB ({soak['max'] / 100:.2f} of the bound)"
            )

        if "enqueue" in only:
            print("\n4. Enqueueing")
            figures = enqueue_figures(app, client, config, enqueue_events)
            print(
                f"   enqueue_many ({enqueue_events} events): {figures['enqueue_many_rate']:,.0f} events/s (target 10,000: {figures['enqueue_many_rate'] / 10_000:.2f}x)"
            )
            print(
                f"   replay-attach enqueue --file ({enqueue_events} lines, incl. start-up and validation pass): {figures['cli_rate']:,.0f} events/s"
            )
            print(
                f"   CLI peak RSS: {figures['cli_rss_small']:.0f} MB for {enqueue_events // 10} lines, {figures['cli_rss_large']:.0f} MB for {enqueue_events} (ratio {figures['cli_rss_large'] / figures['cli_rss_small']:.2f}; 1.00 = constant memory)"
            )
            print(
                f"   enqueue_bug_report(): {figures['producer_ms']:.3f} ms per event (target 1 ms: {figures['producer_ms']:.2f}x)"
            )

        if "latency" in only:
            print("\n5. Pick-up latency of an idle worker, beyond the API time")
            extra, idle = latency_runs(
                box, client, config, app, args.latency, 5 if args.quick else 11
            )
            med = statistics.median(extra)
            print(
                f"   median {med * 1000:.0f} ms over {len(extra)} events (target 100 ms: {med / 0.1:.2f}x)"
            )
            print(
                f"   meanwhile an idle worker (1x4, with its parent) uses {idle:.1f} ms of CPU "
                f"per second ({idle / 10:.1f}% of a core)"
            )

        budget = 300
        if "budget" in only:
            print(
                f"\n6. Request budget: Zendesk limited to {budget}/minute by the sandbox and by rate_limits.zendesk_per_minute (2x8 workers, 60 s of steady state)"
            )
            figures = rate_limit_run(box, client, url, app, budget)
            print(
                f"   budget used: {figures['used']:.1%} (target at least 90%); answered 429: {figures['refused']:.2%} of {figures['calls']:.0f} calls (target under 1%)"
            )
        if "startup" in only:
            runs_startup = 5 if args.quick else 21
            print(
                "\n7. Start-up of one `replay-attach enqueue`: from the command's start to its "
                f"message in Redis (median of {runs_startup})"
            )
            now = enqueue_startup(client, config, runs_startup)
            line = f"   {now * 1000:.0f} ms (target 150 ms: {now / 0.15:.2f}x)"
            if args.baseline:
                before = enqueue_startup(client, config, runs_startup, args.baseline)
                line += f"; baseline {before * 1000:.0f} ms (now {now / before:.2f}x the baseline's)"
            print(line)
        app.broker.close()


if __name__ == "__main__":
    main()
