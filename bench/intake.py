"""Benchmark: signed Zendesk deliveries per second through ``replay-attach serve``, against a peer.

Each run sends distinct, validly signed Zendesk webhook deliveries with wrk (Debian's
``wrk`` package) over 64 connections for a fixed time, at 1 and 2 server processes,
then checks that every 2xx answer is an event on the queue. In the same run, in turn
with the intake (which of the two goes first alternates from round to round), the
peer (``bench/peer_receiver.py``) takes the same deliveries: the simplest correct
receiver on the same framework and server (Starlette on uvicorn, uvloop and
httptools, as many processes), which checks the same signature, reads the JSON and
writes one dramatiq message to Redis, and whose answers are checked on the queue
alike. Not a test: it prints figures, and writes them with the machine's description
to ``bench/results/intake.json``.

    .venv/bin/python bench/intake.py              # 3 rounds of 10 s per setting
    .venv/bin/python bench/intake.py --seconds 5 --rounds 1

Redis: ``REDIS_URL`` if set, else the embedded Redis in a temporary directory.
Goals, as ratios to the peer measured in the same round (median over the rounds):
the intake's rate at least 0.6 of the peer's, its p99 at most 1.5 times the peer's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis
import requests
from fleet import ROOT, free_port, redis_url
from results_file import RESULTS_DIR, machine, write

from worker import keys
from worker.jobs.messages import decode, queue_keys

SECRET = base64.b64encode(os.urandom(32)).decode()
CONNECTIONS = 64
#: The servers measured, in the order of the first round.
SERVERS = ("intake", "peer")
#: The goals: the intake's rate at least this share of the peer's...
GOAL_RATE_RATIO = 0.6
#: ...and its p99 at most this multiple of the peer's.
GOAL_P99_RATIO = 1.5
RESULTS = RESULTS_DIR / "intake.json"

# Each wrk thread cycles through its own share of the pre-signed deliveries.
WRK_SCRIPT = r"""
local deliveries = {}
local counter = 0
local threads = {}
local answered
function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do
    local signature, timestamp, invocation, body = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
    table.insert(deliveries, {signature, timestamp, invocation, body})
  end
  counter = offset * 1000003
  -- The job ids of this thread's 202 answers; the C library flushes the file when wrk exits.
  answered = io.open(args[2] .. "." .. offset, "w")
  answered:setvbuf("full", 1048576)
end
function request()
  counter = counter + 1
  local d = deliveries[(counter % #deliveries) + 1]
  return wrk.format("POST", "/webhooks/zendesk", {
    ["Content-Type"] = "application/json",
    ["X-Zendesk-Webhook-Signature"] = d[1],
    ["X-Zendesk-Webhook-Signature-Timestamp"] = d[2],
    ["X-Zendesk-Webhook-Invocation-Id"] = d[3],
  }, d[4])
end
function response(status, headers, body)
  if status == 202 then
    answered:write(body:match('"job_ids":%["([^"]+)"') or "?", "\n")
  end
end
"""


def write_deliveries(path: Path, count: int) -> None:
    """Distinct signed deliveries, valid for the next 5 minutes."""
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = os.urandom(4).hex()
    with path.open("w") as out:
        for n in range(count):
            body = json.dumps(
                {"ticket_id": str(n + 1), "session_id": f"bench-{run}-{n}", "status": "new"}
            )
            digest = hmac.new(SECRET.encode(), (timestamp + body).encode(), hashlib.sha256)
            signature = base64.b64encode(digest.digest()).decode()
            out.write(f"{signature}\t{timestamp}\t{run}-{n}\t{body}\n")


def start_server(
    command: list[str], env: dict[str, str], log: Path, port: int
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except requests.ConnectionError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_wrk(
    script: Path, deliveries: Path, answered: Path, seconds: int, port: int
) -> dict[str, Any]:
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/webhooks/zendesk",
            "--",
            str(deliveries),
            str(answered),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(percentile: str) -> float:
        found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        assert found, output
        value, unit = float(found.group(1)), found.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if os.environ.get("BENCH_SHOW_WRK"):
        print(output, file=sys.stderr)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def server_command(kind: str, processes: int, port: int) -> list[str]:
    """How to serve ``kind``: the intake as it ships, the peer with uvicorn's same settings."""
    if kind == "intake":
        return [
            *(sys.executable, "-m", "worker", "serve", "--port", str(port)),
            *("--workers", str(processes)),
        ]
    # worker.intake.server's settings: no access log, no server header, a long backlog; its
    # loop and parser are uvicorn's "auto" ones, uvloop and httptools, named here.
    return [
        *(sys.executable, "-m", "uvicorn", "peer_receiver:app", "--port", str(port)),
        *("--workers", str(processes), "--loop", "uvloop", "--http", "httptools"),
        *("--no-access-log", "--log-level", "warning", "--no-server-header"),
        *("--backlog", "2048", "--timeout-graceful-shutdown", "30"),
    ]


def measure(
    kind: str, processes: int, url: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    queue_key, messages_key = queue_keys(keys.QUEUE_NAME)
    client.delete(queue_key, messages_key)
    for key in client.scan_iter(keys.REDIS_PREFIX + ":delivery:*", count=10_000):
        client.delete(key)
    deliveries = work / "deliveries.tsv"
    write_deliveries(deliveries, args.deliveries)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLAY_ATTACH_", "ZENDESK_"))}
    env.update(
        {
            "REDIS_URL": url,
            "ZENDESK_WEBHOOK_SECRET": SECRET,
            "POSTHOG_PROJECT_ID": "1",
            "POSTHOG_PERSONAL_API_KEY": "phx_bench",
            "PYTHONPATH": str(ROOT / "bench"),
            # A run enqueues up to about 100,000 deliveries, which no worker drains here:
            # the intake's load shedding (intake.max_queue_depth) must not answer them.
            "REPLAY_ATTACH_INTAKE_MAX_QUEUE_DEPTH": "100000000",
            # On, as it ships, but on a port of its own: another run may hold the default.
            "REPLAY_ATTACH_METRICS_PORT": str(free_port()),
        }
    )
    process = start_server(server_command(kind, processes, port), env, work / f"{kind}.log", port)
    answered = work / "answered"
    try:
        figures = run_wrk(work / "deliveries.lua", deliveries, answered, args.seconds, port)
    finally:
        stop_server(process)
    figures.update(check_queued(client, answered))
    client.close()
    return figures


def check_queued(client: redis.Redis, answered: Path) -> dict[str, int]:
    """How many job ids wrk read in 202 answers, and how many of those are on the queue.

    The queue may hold a few more: requests still in flight when wrk stopped, whose
    answers it did not read (at most one per connection).
    """
    ids: set[str] = set()
    for part in answered.parent.glob(answered.name + ".*"):
        ids.update(line for line in part.read_text().splitlines() if line)
        part.unlink()
    queue_key, messages_key = queue_keys(keys.QUEUE_NAME)
    messages: list[bytes] = client.hvals(messages_key)  # type: ignore[assignment]
    queued = {decode(data).job_id for data in messages}
    return {
        "answered_202": len(ids),
        "answered_and_queued": len(ids & queued),
        "queued": client.llen(queue_key),
    }


def every_2xx_queued(run: dict[str, Any]) -> bool:
    """Every request answered 202, with a job id that is on the queue, and nothing else."""
    return bool(
        run["non_2xx"] == 0
        and run["answered_202"] == run["requests"]
        and run["answered_and_queued"] == run["answered_202"]
        and run["queued"] - run["answered_202"] <= CONNECTIONS
        and not run["socket_errors"]
    )


def summarise(processes: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per server, and the intake's ratios to the peer round by round, with their median."""
    rate_ratios = [i["rate"] / p["rate"] for i, p in zip(runs["intake"], runs["peer"], strict=True)]
    p99_ratios = [i["p99"] / p["p99"] for i, p in zip(runs["intake"], runs["peer"], strict=True)]
    rate_ratio, p99_ratio = statistics.median(rate_ratios), statistics.median(p99_ratios)
    return {
        "processes": processes,
        "median": {
            kind: {m: statistics.median(r[m] for r in kind_runs) for m in ("rate", "p50", "p99")}
            for kind, kind_runs in runs.items()
        },
        "every_2xx_queued": {
            kind: all(every_2xx_queued(r) for r in kind_runs) for kind, kind_runs in runs.items()
        },
        "rate_ratio": {
            "median": rate_ratio,
            "per_round": rate_ratios,
            "goal_met": rate_ratio >= GOAL_RATE_RATIO,
        },
        "p99_ratio": {
            "median": p99_ratio,
            "per_round": p99_ratios,
            "goal_met": p99_ratio <= GOAL_P99_RATIO,
        },
        "runs": runs,
    }


def print_rows(summary: dict[str, Any]) -> None:
    for kind, runs in summary["runs"].items():
        median = summary["median"][kind]
        every = "yes" if summary["every_2xx_queued"][kind] else "NO"
        detail = ", ".join(f"{r['answered_and_queued']}/{r['answered_202']}" for r in runs)
        print(
            f"| {kind} | {summary['processes']} | {median['rate']:,.0f} | {median['p50']:.1f} | "
            f"{median['p99']:.1f} | {every} ({detail}) |",
            flush=True,
        )


def print_ratios(summaries: list[dict[str, Any]]) -> None:
    print(
        f"\n| processes | intake rate / peer rate (goal >= {GOAL_RATE_RATIO}) | "
        f"intake p99 / peer p99 (goal <= {GOAL_P99_RATIO}) |"
    )
    print("|---|---|---|")
    for summary in summaries:
        cells = []
        for name in ("rate_ratio", "p99_ratio"):
            ratio = summary[name]
            rounds = ", ".join(f"{r:.2f}" for r in ratio["per_round"])
            met = "met" if ratio["goal_met"] else "NOT met"
            cells.append(f"{ratio['median']:.2f} {met} (rounds: {rounds})")
        print(f"| {summary['processes']} | {cells[0]} | {cells[1]} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Runs per setting (median shown).")
    parser.add_argument(
        "--deliveries", type=int, default=200_000, help="Distinct signed deliveries."
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="Where to write the figures (JSON)."
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    summaries: list[dict[str, Any]] = []
    with redis_url() as url, tempfile.TemporaryDirectory(prefix="ra-bench-intake-") as tmp:
        about = machine(url)
        print(
            f"# {about['date']}: {about['cores']} cores ({about['cpu']}), "
            f"{about['memory_gib']} GiB, Python {about['python']}, Redis {about['redis']}"
        )
        print(
            f"# {CONNECTIONS} connections, {args.seconds} s per run, median of {args.rounds} "
            "round(s); intake and peer in turn"
        )
        print("| server | processes | deliveries/s | p50 ms | p99 ms | every 2xx queued |")
        print("|---|---|---|---|---|---|")
        work = Path(tmp)
        (work / "deliveries.lua").write_text(WRK_SCRIPT)
        for processes in (1, 2):
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SERVERS}
            for round_number in range(args.rounds):
                # In turn, each first every other round: both see the same machine.
                order = SERVERS if round_number % 2 == 0 else SERVERS[::-1]
                for kind in order:
                    runs[kind].append(measure(kind, processes, url, args, work))
            summaries.append(summarise(processes, runs))
            print_rows(summaries[-1])
    print_ratios(summaries)
    results = {
        "machine": about,
        "settings": {
            "connections": CONNECTIONS,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "deliveries": args.deliveries,
        },
        "goals": {"rate_ratio_at_least": GOAL_RATE_RATIO, "p99_ratio_at_most": GOAL_P99_RATIO},
        "settings_measured": summaries,
    }
    write(args.results, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
