"""Benchmark: signed Zendesk deliveries per second through ``replay-attach serve``.

Each run sends distinct, validly signed Zendesk webhook deliveries with wrk (Debian's
``wrk`` package) over 64 connections for a fixed time, at 1 and 2 server processes,
then checks that every 2xx answer is an event on the queue. Beside it, in the same
run, the same framework's bare endpoint (Starlette on uvicorn, answering 202 with
no verification and no enqueue) gives the ratio. Not a test: it prints figures.

    .venv/bin/python bench/intake.py              # 3 rounds of 10 s per setting
    .venv/bin/python bench/intake.py --seconds 5 --rounds 1

Redis: ``REDIS_URL`` if set, else the embedded Redis in a temporary directory.
Target on a 2-core machine: at least 2,000 deliveries/s, p99 under 50 ms, and at
least half of the bare endpoint's rate.
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
from dramatiq import Message
from fleet import ROOT, redis_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker import keys

SECRET = base64.b64encode(os.urandom(32)).decode()
CONNECTIONS = 64
PORT = 18080


async def _bare(request: Request) -> Response:
    await request.body()
    return JSONResponse({"job_ids": []}, status_code=202)


#: The bare endpoint: the framework's own cost of taking a POST and answering 202.
bare_app = Starlette(routes=[Route("/webhooks/zendesk", _bare, methods=["POST"])])

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


def start_server(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_wrk(script: Path, deliveries: Path, answered: Path, seconds: int) -> dict[str, Any]:
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
            f"http://127.0.0.1:{PORT}/webhooks/zendesk",
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


def measure(
    kind: str, processes: int, url: str, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    queue_key, messages_key = keys.queue_keys(keys.QUEUE_NAME)
    client.delete(queue_key, messages_key)
    for key in client.scan_iter(keys.REDIS_PREFIX + ":delivery:*", count=10_000):
        client.delete(key)
    deliveries = work / "deliveries.tsv"
    write_deliveries(deliveries, args.deliveries)
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
        }
    )
    if kind == "intake":
        command = [
            sys.executable,
            "-m",
            "worker",
            "serve",
            "--port",
            str(PORT),
            "--workers",
            str(processes),
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "intake:bare_app",
            "--port",
            str(PORT),
            "--workers",
            str(processes),
            "--no-access-log",
            "--log-level",
            "warning",
            "--no-server-header",
            "--backlog",
            "2048",
        ]
    process = start_server(command, env, work / f"{kind}.log")
    answered = work / "answered"
    try:
        figures = run_wrk(work / "deliveries.lua", deliveries, answered, args.seconds)
    finally:
        stop_server(process)
    if kind == "intake":
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
    queue_key, messages_key = keys.queue_keys(keys.QUEUE_NAME)
    messages: list[bytes] = client.hvals(messages_key)  # type: ignore[assignment]
    queued = {Message.decode(data).message_id for data in messages}
    return {
        "answered_202": len(ids),
        "answered_and_queued": len(ids & queued),
        "queued": client.llen(queue_key),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk run.")
    parser.add_argument("--rounds", type=int, default=3, help="Runs per setting (median shown).")
    parser.add_argument(
        "--deliveries", type=int, default=200_000, help="Distinct signed deliveries."
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    print(
        f"# {CONNECTIONS} connections, {args.seconds} s per run, median of {args.rounds}; "
        f"{os.cpu_count()} cores"
    )
    print("| server | processes | deliveries/s | p50 ms | p99 ms | of bare | every 2xx queued |")
    print("|---|---|---|---|---|---|---|")
    with redis_url() as url, tempfile.TemporaryDirectory(prefix="ra-bench-intake-") as tmp:
        work = Path(tmp)
        (work / "deliveries.lua").write_text(WRK_SCRIPT)
        for processes in (1, 2):
            rows: dict[str, list[dict[str, Any]]] = {"bare": [], "intake": []}
            for _ in range(args.rounds):  # in turn, so that both see the same machine
                for kind in ("bare", "intake"):
                    rows[kind].append(measure(kind, processes, url, args, work))
            bare_rate = statistics.median(r["rate"] for r in rows["bare"])
            for kind, runs in rows.items():
                rate = statistics.median(r["rate"] for r in runs)
                p50 = statistics.median(r["p50"] for r in runs)
                p99 = statistics.median(r["p99"] for r in runs)
                if kind == "intake":
                    every = all(
                        r["non_2xx"] == 0
                        and r["answered_202"] == r["requests"]
                        and r["answered_and_queued"] == r["answered_202"]
                        and r["queued"] - r["answered_202"] <= CONNECTIONS
                        and not r["socket_errors"]
                        for r in runs
                    )
                    detail = ", ".join(
                        f"{r['answered_and_queued']}/{r['answered_202']}" for r in runs
                    )
                    queued = f"{'yes' if every else 'NO'} ({detail})"
                else:
                    queued = "-"
                print(
                    f"| {kind} | {processes} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | "
                    f"{rate / bare_rate:.2f} | {queued} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
