"""The intake with a worker behind it: signed deliveries become notes, once, through outages."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.intake_server import IntakeServer, bearer, intake_config, zendesk_headers
from tests.redis_server import RedisServer
from tests.scenarios import (
    QUEUE,
    all_attached,
    app_on,
    assert_attached_exactly_once,
    embed_token,
    notes_on,
    sandbox_with,
    wait_for,
)
from worker.app import App
from worker.config import Config


def zendesk_delivery(ticket: int, session: str) -> bytes:
    return json.dumps({"ticket_id": str(ticket), "session_id": session, "status": "new"}).encode()


def test_a_signed_zendesk_delivery_makes_one_note_and_a_forged_one_nothing(
    sandbox: Sandbox,
    redis_url: str,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    tmp_path: Path,
) -> None:
    app = make_app(config_data(sandbox))
    with IntakeServer(intake_config(redis_url), tmp_path) as server:
        forged = zendesk_delivery(102, "forged-session")
        headers = zendesk_headers(forged, secret="c29tZW9uZSBlbHNlcyBzZWNyZXQ=")
        assert (
            requests.post(server.url + "/webhooks/zendesk", forged, headers=headers).status_code
            == 401
        )
        body = zendesk_delivery(101, "0192-signed")
        answer = requests.post(
            server.url + "/webhooks/zendesk", body, headers=zendesk_headers(body)
        )
        assert answer.status_code == 202
        with run_worker(app) as worker:
            worker.drain()
    (note,) = notes_on(sandbox, 101)
    assert note["public"] is False and "0192-signed" in note["body"]
    token = embed_token(note["html_body"])
    assert sandbox.posthog.session_for(token) == "0192-signed" and sandbox.posthog.is_live(token)
    assert notes_on(sandbox, 102) == []
    assert app.failed.all() == []


def test_100_concurrent_deliveries_of_50_events_make_50_jobs_and_50_notes(
    redis_url: str,
    redis_client: redis.Redis,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    tmp_path: Path,
) -> None:
    tickets = {5000 + i: f"concurrent-{i}" for i in range(50)}
    deliveries = []
    for ticket, session in tickets.items():
        body = zendesk_delivery(ticket, session)
        headers = zendesk_headers(body, invocation=f"invocation-{ticket}")
        deliveries += [(body, headers), (body, headers)]  # each sent twice: a sender's retry
    with (
        sandbox_with(auto_create=True) as box,
        IntakeServer(intake_config(redis_url), tmp_path) as server,
    ):
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(
                pool.map(
                    lambda d: requests.post(
                        server.url + "/webhooks/zendesk", d[0], headers=d[1], timeout=30
                    ),
                    deliveries,
                )
            )
        assert [a.status_code for a in answers] == [202] * 100
        job_ids = {tuple(a.json()["job_ids"]) for a in answers}
        assert len(job_ids) == 50
        app = make_app(config_data(box))
        assert app.broker.do_qsize(QUEUE) == 50
        with run_worker(app, threads=8) as worker:
            worker.drain(timeout=60)
        assert_attached_exactly_once(box, tickets, {})
        assert app.failed.all() == []


def test_redis_down_is_503_then_every_2xx_attaches_once_it_is_back(
    make_config: Callable[..., Config],
    run_worker: Callable[..., RunningWorker],
    tmp_path: Path,
) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    try:
        with (
            sandbox_with(auto_create=True) as box,
            IntakeServer(intake_config(redis_server.url), tmp_path / "intake") as server,
        ):
            url = server.url + "/v1/bug-reports"

            def send(ticket: int) -> requests.Response:
                event = {"session_id": f"outage-{ticket}", "zendesk_ticket": ticket}
                return requests.post(url, json=event, headers=bearer(), timeout=30)

            accepted = {6000: "outage-6000"} if send(6000).status_code == 202 else {}
            redis_server.shutdown()
            down = send(6001)
            assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0
            assert "unavailable" in down.json()["error"]
            readiness = requests.get(server.url + "/readyz", timeout=10)
            assert readiness.status_code == 503
            # A ticket solved while Redis is away: 503 too, so that Zendesk sends it again.
            solved = json.dumps(
                {"ticket_id": "6000", "session_id": "", "status": "solved"}
            ).encode()
            answer = requests.post(
                server.url + "/webhooks/zendesk",
                solved,
                headers=zendesk_headers(solved),
                timeout=30,
            )
            assert answer.status_code == 503 and answer.headers["Retry-After"]
            redis_server.start()
            # A sender resends after Retry-After: now it is taken.
            wait_for(lambda: send(6001).status_code == 202, 20, "the intake to accept again")
            accepted[6001] = "outage-6001"
            assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
            assert send(6002).status_code == 202
            accepted[6002] = "outage-6002"
            assert len(accepted) == 3
            with app_on(redis_server.url, make_config(config_data(box))) as app:
                with run_worker(app) as worker:
                    wait_for(lambda: all_attached(box, accepted, {}), 30, "every accepted report")
                    worker.drain()
                # Each 2xx attached; resends after a 503 may only add a duplicate job,
                # which the ledger turns into nothing more on the ticket.
                assert_attached_exactly_once(box, accepted, {})
                assert app.failed.all() == []
    finally:
        redis_server.kill()


def test_sigterm_finishes_the_request_in_flight(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    server = IntakeServer(intake_config(redis_url), tmp_path, processes=2).start()
    try:
        body = json.dumps({"session_id": "in-flight", "zendesk_ticket": 9}).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            head = (
                f"POST /v1/bug-reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: {bearer()['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[:10])
            time.sleep(0.5)  # the request is in flight, its body half sent
            assert server.process is not None
            server.process.send_signal(15)
            time.sleep(0.5)
            sock.sendall(body[10:])
            answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 202"), answer
        assert server.process.wait(timeout=40) == 0
        assert redis_client.llen("dramatiq:" + QUEUE) == 1
        # Stopped: new connections are refused.
        try:
            requests.get(server.url + "/healthz", timeout=2)
            raise AssertionError("the server still answers after SIGTERM")
        except requests.ConnectionError:
            pass
    finally:
        server.stop()
