"""A worker process SIGKILLed mid-job, and Redis restarted mid-run: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.redis_server import RedisServer
from tests.scenarios import (
    QUEUE,
    all_attached,
    app_on,
    assert_attached_exactly_once,
    jira_issue,
    notes_on,
    sandbox_with,
    wait_for,
    worker_process,
)
from worker.config import Config
from worker.jobs.producer import enqueue_bug_report
from worker.jobs.scheduler import scheduled_count

# --------------------------------------------------------------------------- killed worker


def write_config(data: dict[str, Any], redis_url: str, directory: Path) -> dict[str, str]:
    """An environment for ``python -m worker`` reading ``data`` against ``redis_url``."""
    data["broker"]["redis_url"] = redis_url
    path = directory / "worker-config.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_URL", "POSTHOG_", "ZENDESK_", "JIRA_", "REPLAY_ATTACH_"))
    }
    env["REPLAY_ATTACH_CONFIG"] = str(path)
    # No metrics listener: the default port may be another worker's on this machine.
    env["REPLAY_ATTACH_METRICS_PORT"] = "0"
    return env


def stop_gracefully(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def test_sigkilled_worker_is_redone_exactly_once_by_the_next_one(
    sandbox: Sandbox,
    redis_url: str,
    redis_client: redis.Redis,  # flushes the test database first
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    # A read timeout longer than the "slow" answer below: the worker is killed while waiting.
    data = config_data(sandbox, http__read_timeout_seconds=10)
    env = write_config(data, redis_url, tmp_path)
    log = tmp_path / "workers.log"
    tickets = {ticket: f"kill-z-{ticket}" for ticket in range(101, 106)}
    issues = {f"BUG-{n}": f"kill-j-{n}" for n in range(1, 6)}
    for n in range(6, 13):
        sandbox.zendesk.add_ticket(100 + n, subject=f"Ticket {100 + n}")
        tickets[100 + n] = f"kill-z-{100 + n}"
        sandbox.jira.add_issue(f"BUG-{n}")
        issues[f"BUG-{n}"] = f"kill-j-{n}"
    # Every call takes a while, so several jobs are in flight when the kill comes; and the note
    # on ticket 103 is applied but not answered before it: an outcome the worker never learns.
    sandbox.set_latency(0.3)
    sandbox.zendesk.slow_seconds = 8
    sandbox.zendesk.fail_next("slow", method="PUT", path_regex=r"/tickets/103\.json$")
    with app_on(redis_url, make_config(data)) as app:
        for ticket, session in tickets.items():
            enqueue_bug_report(session_id=session, zendesk_ticket=ticket, queue=app.queue)
        for key, session in issues.items():
            enqueue_bug_report(session_id=session, jira_issue=key, queue=app.queue)

        def landed() -> int:
            return sum(len(notes_on(sandbox, t)) for t in tickets) + sum(
                len(jira_issue(sandbox, k)["comments"]) for k in issues
            )

        with worker_process(env, log) as first:
            wait_for(
                lambda: landed() >= 3 and len(notes_on(sandbox, 103)) == 1,
                60,
                "a note applied but not yet answered",
            )
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            killed_at = time.monotonic()
        before = landed()
        assert before < len(tickets) + len(issues)

        with worker_process(env, log) as second:
            restarted_at = time.monotonic()
            try:
                wait_for(lambda: all_attached(sandbox, tickets, issues), 60, "every attachment")
                emptied = wait_for(lambda: app.broker.do_qsize(QUEUE) == 0, 60, "an empty queue")
            except AssertionError:
                print(log.read_text()[-5000:])
                raise
            done_at = time.monotonic()
            print(
                f"\nredo after SIGKILL: everything attached {done_at - killed_at - emptied:.1f} s "
                f"after the kill ({done_at - restarted_at - emptied:.1f} s after the new worker "
                f"started), queue empty {emptied:.1f} s later; {before} of "
                f"{len(tickets) + len(issues)} had landed before the kill"
            )
            assert stop_gracefully(second) == 0

        assert_attached_exactly_once(sandbox, tickets, issues)
        assert app.failed.all() == []
        # Each note and comment was sent once; the one whose answer never came was looked for
        # on its ticket by the redo instead of being sent again.
        assert len(sandbox.zendesk.calls("PUT", r"/tickets/\d+\.json$")) == len(tickets)
        assert len(sandbox.jira.calls("POST", r"/comment$")) == len(issues)
        assert len(sandbox.zendesk.calls("GET", r"/tickets/103/comments\.json$")) == 1


# --------------------------------------------------------------------------- Redis restart


#: How long Redis stays down: longer than a dramatiq consumer's poll, shorter than a heartbeat.
OUTAGE_SECONDS = 1.5


@pytest.mark.parametrize(
    "retries_waiting",
    [
        pytest.param(False, id="jobs-in-flight"),
        # dramatiq's own delay queue would lose these (see worker.jobs.scheduler).
        pytest.param(True, id="retries-waiting-too"),
    ],
)
def test_redis_restart_mid_run_loses_and_duplicates_nothing(
    retries_waiting: bool,
    make_config: Callable[..., Config],
    run_worker: Callable[..., RunningWorker],
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        with sandbox_with(auto_create=True) as box:
            box.set_latency(0.1)
            if retries_waiting:
                # The first notes are throttled: their retries wait 5 s on the delay queue.
                box.zendesk.retry_after_seconds = 5
                box.zendesk.fail_next("429", count=3, method="PUT", path_regex=r"/\d+\.json$")
            tickets = {4000 + i: f"outage-z-{i}" for i in range(15)}
            issues = {f"OUT-{i + 1}": f"outage-j-{i}" for i in range(15)}
            with app_on(server.url, make_config(config_data(box))) as app:
                for ticket, session in tickets.items():
                    enqueue_bug_report(session_id=session, zendesk_ticket=ticket, queue=app.queue)
                for key, session in issues.items():
                    enqueue_bug_report(session_id=session, jira_issue=key, queue=app.queue)

                def landed() -> int:
                    return sum(len(notes_on(box, t)) for t in tickets) + sum(
                        len(issue["comments"])
                        for issue in (box.jira.issue(k) for k in issues)
                        if issue is not None
                    )

                def ready_for_the_outage() -> bool:
                    if landed() < 3:
                        return False
                    return not retries_waiting or scheduled_count(app.redis) >= 3

                with run_worker(app, threads=4) as worker:
                    wait_for(ready_for_the_outage, 60, "jobs in flight")
                    server.shutdown()
                    # Work in flight carries on against the vendors while Redis is away.
                    time.sleep(OUTAGE_SECONDS)
                    server.start()
                    try:
                        took = wait_for(
                            lambda: all_attached(box, tickets, issues), 20, "every attachment"
                        )
                    except AssertionError as exc:
                        raise AssertionError(
                            f"{exc}; {scheduled_count(app.redis)} retries still scheduled"
                        ) from None
                    print(f"\nall attached {took:.1f} s after Redis came back")
                    worker.drain(timeout=30)
                assert_attached_exactly_once(box, tickets, issues)
                assert app.failed.all() == []
                assert app.broker.do_qsize(QUEUE) == 0
    finally:
        server.kill()
