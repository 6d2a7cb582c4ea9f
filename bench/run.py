"""Benchmark: how close replay-attach gets to its I/O bound.

Runs the real worker (``replay-attach worker`` processes) against the sandbox
doubles with injected latency and prints figures, each as a ratio to a bound
or to a baseline measured in the same run. Not a test: it never asserts a
time; it reports medians of several runs. It writes the figures it prints, with
the machine's description, to ``bench/results/run.json``.

    .venv/bin/python bench/run.py            # full run (several minutes)
    .venv/bin/python bench/run.py --quick    # smaller, for a first look
    .venv/bin/python bench/run.py --only throughput --curve 2x8 --baseline /tmp/old
                                             # against another checkout, in turn

Redis: ``REDIS_URL`` if set, else the embedded Redis in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import redis
from fleet import (
    free_port,
    redis_url,
    worker_env,
)
from measures import (
    enqueue_figures,
    enqueue_startup,
    latency_runs,
    rate_limit_run,
    single_thread_cpu,
    soak_run,
    throughput_run,
)
from results_file import RESULTS_DIR, machine, write

from sandbox.app import Sandbox
from worker.app import create_app
from worker.config import DEFAULT_CONFIG_PATH, load_config

SECTIONS = ("throughput", "jira", "memory", "enqueue", "latency", "budget", "startup", "metrics")
RESULTS = RESULTS_DIR / "run.json"


def print_throughput_row(
    label: str, results: list[dict[str, Any]], note: str = ""
) -> dict[str, Any]:
    """Print one setting's row of the throughput table, and return its figures."""
    bound = results[0]["bound"]
    steady = statistics.median(r["steady_rate"] for r in results)
    whole = statistics.median(r["rate"] for r in results)
    cpu = statistics.median(r["cpu_ms_per_job"] for r in results)
    rss = max(r["rss_mb"] for r in results)
    print(
        f"   {label:<8} {bound:7.1f} {steady:8.1f} {steady / bound:7.1%} {whole:8.1f} "
        f"{whole / bound:7.1%} {cpu:11.2f} {rss:7.0f}{note}"
    )
    return {
        "bound_jobs_per_s": bound,
        "steady_jobs_per_s": steady,
        "steady_ratio": steady / bound,
        "whole_run_jobs_per_s": whole,
        "whole_run_ratio": whole / bound,
        "cpu_ms_per_job": cpu,
        "max_rss_mb": rss,
        "runs": len(results),
    }


def calls_per_job(run: dict[str, Any], jobs: int) -> dict[str, Any]:
    """The calls of one run, per job and endpoint, and their total per job."""
    per_endpoint = {endpoint: count / jobs for endpoint, count in sorted(run["calls"].items())}
    return {"per_endpoint": per_endpoint, "total": run["calls_per_job"]}


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
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="where to write the figures, with the machine's description (JSON; default "
        "bench/results/run.json)",
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
        about = machine(url)
        print(
            f"machine: {about['cores']} cores, {about['memory_gib']:.0f} GiB; python {about['python']}; redis {about['redis_where']}"
        )
        sections: dict[str, Any] = {}
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
        throughput: dict[str, Any] = {}
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
            setting = f"{processes}x{threads}"
            throughput[setting] = print_throughput_row(setting, results)
            if baseline:
                throughput[setting]["baseline"] = print_throughput_row(
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
        if throughput:
            sections["throughput"] = throughput
        if jira_results:
            sections["jira"] = {
                "2x8": print_throughput_row("2x8 Jira", jira_results, "   (remote link + comment)")
            }

        if last or jira_results:
            print("\n2. Calls per job on the happy path (2x8 runs)")
        if last:
            for endpoint, count in sorted(last["calls"].items()):
                print(f"   {count / jobs:5.2f}  {endpoint}")
            print(
                f"   {last['calls_per_job']:5.2f}  total per Zendesk job "
                "(minimum with a tag: 4.00 = read the recording + share + note + tag)"
            )
            sections["calls_per_job"] = {"zendesk": calls_per_job(last, jobs)}
        if jira_results:
            for endpoint, count in sorted(jira_results[0]["calls"].items()):
                print(f"   {count / jobs:5.2f}  {endpoint}")
            print(
                f"   {jira_results[0]['calls_per_job']:5.2f}  total per Jira job "
                "(minimum: 4.00 = read the recording + share + remote link + comment)"
            )
            sections.setdefault("calls_per_job", {})["jira"] = calls_per_job(jira_results[0], jobs)

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
            sections["memory"] = {
                "cpu_ms_per_job": {
                    "fleet_2x8": last["cpu_median"] if last else None,
                    "one_thread_back_to_back": hot,
                    "one_thread_with_latency": cold,
                    "bound": 3.0,
                },
                "rss_mb": {
                    "jobs": soak_jobs,
                    "idle": soak["idle"],
                    "warm_after_jobs": soak["warm_jobs"],
                    "warm": soak["warm"],
                    "end": soak["end"],
                    "max": soak["max"],
                    "growth": soak["end"] / soak["warm"],
                    "bound": 100,
                },
            }

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
            sections["enqueue"] = {
                "events": enqueue_events,
                **figures,
                "targets": {"enqueue_many_rate": 10_000, "producer_ms": 1.0},
            }

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
            sections["latency"] = {
                "median_ms": med * 1000,
                "events": len(extra),
                "target_ms": 100,
                "idle_worker_cpu_ms_per_s": idle,
            }

        budget = 300
        if "budget" in only:
            print(
                f"\n6. Request budget: Zendesk limited to {budget}/minute by the sandbox and by rate_limits.zendesk_per_minute (2x8 workers, 60 s of steady state)"
            )
            figures = rate_limit_run(box, client, url, app, budget)
            print(
                f"   budget used: {figures['used']:.1%} (target at least 90%); answered 429: {figures['refused']:.2%} of {figures['calls']:.0f} calls (target under 1%)"
            )
            sections["budget"] = {
                "per_minute": budget,
                **figures,
                "targets": {"used_at_least": 0.9, "refused_under": 0.01},
            }
        if "startup" in only:
            runs_startup = 5 if args.quick else 21
            print(
                "\n7. Start-up of one `replay-attach enqueue`: from the command's start to its "
                f"message in Redis (median of {runs_startup})"
            )
            now = enqueue_startup(client, config, runs_startup)
            line = f"   {now * 1000:.0f} ms (target 150 ms: {now / 0.15:.2f}x)"
            sections["startup"] = {"median_ms": now * 1000, "runs": runs_startup, "target_ms": 150}
            if args.baseline:
                before = enqueue_startup(client, config, runs_startup, args.baseline)
                line += (
                    f"; baseline {before * 1000:.0f} ms (now {now / before:.2f}x the baseline's)"
                )
                sections["startup"]["baseline_median_ms"] = before * 1000
            print(line)
        if "metrics" in only:
            print(
                "\n8. Worker CPU per job with metrics on (--metrics-port, every process's "
                "counters in files, summed at each scrape) and off, 2x8, in turn"
            )
            on: list[dict[str, Any]] = []
            off: list[dict[str, Any]] = []
            for _ in range(runs):
                for into, port in ((on, str(free_port())), (off, "0")):
                    env = {**config, "REPLAY_ATTACH_METRICS_PORT": port}
                    into.append(
                        throughput_run(box, client, env, app, 2, 8, jobs, args.latency, True)
                    )
            on_ms = statistics.median(r["cpu_ms_per_job"] for r in on)
            off_ms = statistics.median(r["cpu_ms_per_job"] for r in off)
            print(
                f"   on {on_ms:.2f} ms, off {off_ms:.2f} ms: {on_ms / off_ms:.2f}x "
                "(bound 1.10x: at most 10% more)"
            )
            sections["metrics"] = {
                "cpu_ms_per_job_on": on_ms,
                "cpu_ms_per_job_off": off_ms,
                "ratio": on_ms / off_ms,
                "bound_ratio": 1.10,
            }
        app.broker.close()
    write(
        args.results,
        {
            "machine": about,
            "settings": {
                "quick": args.quick,
                "sections": [s for s in SECTIONS if s in only],
                "api_latency_s": args.latency,
                "jobs_per_run": jobs,
                "runs": runs,
                "curve": [f"{p}x{t}" for p, t in curve],
                "baseline": str(args.baseline) if args.baseline else None,
            },
            "sections": sections,
        },
    )


if __name__ == "__main__":
    main()
