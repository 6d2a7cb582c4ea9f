"""``replay-attach serve`` facing the internet: slow senders over raw sockets, floods of events.

Each test runs the real server (uvicorn in a process of its own) against a real Redis.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.intake_server import (
    INTAKE_TOKENS,
    IntakeServer,
    bearer,
    intake_config,
    jira_headers,
    posthog_headers,
    zendesk_headers,
)
from tests.scenarios import free_port, wait_for
from tests.system.test_metrics import scrape, total
from worker import keys
from worker.jobs.messages import queue_keys

#: Short, so that a late request is closed within the test.
DEADLINE = 1.0
SLOTS = 3


@pytest.fixture(scope="module")
def strict(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    config = intake_config(redis_url, read_deadline_seconds=DEADLINE, max_bodies_read_at_once=SLOTS)
    with IntakeServer(config, tmp_path_factory.mktemp("strict")) as server:
        yield server


def connect(server: IntakeServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def request_head(path: str, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: intake", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def until_closed(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection (the socket's timeout: 10 s)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def one_answer(sock: socket.socket) -> str:
    """One HTTP answer read off the socket: its head and its Content-Length of body."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return (head + b"\r\n\r\n" + body).decode()


def is_open(sock: socket.socket) -> bool:
    """Whether the server still holds the connection (and has sent nothing on it)."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def new_lines(server: IntakeServer, before: str, needle: str, count: int = 1) -> str:
    """The log written since ``before``, once it holds ``count`` lines with ``needle``."""
    wait_for(
        lambda: server.log_text()[len(before) :].count(needle) >= count,
        10,
        f"{count} log line(s) with {needle!r}",
    )
    time.sleep(0.2)  # a second line, if any, would be written by now
    return server.log_text()[len(before) :]


# --------------------------------------------------------------------------- the read deadline


def test_headers_sent_a_byte_at_a_time_are_answered_408_and_closed_at_the_deadline(
    strict: IntakeServer,
) -> None:
    before = strict.log_text()
    head = request_head("/webhooks/zendesk", 2, {"Content-Type": "application/json"})
    with connect(strict) as sock:
        sock.settimeout(0.2)
        answer = b""
        for byte in head[:-4]:  # never the blank line that ends the headers
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if answer:
                break
    # Never idle for long, so uvicorn's keep-alive timeout never applied: the deadline did.
    assert answer.startswith(b"HTTP/1.1 408"), answer
    log = new_lines(strict, before, "did not arrive whole")
    assert log.count("did not arrive whole within 1 s (headers incomplete)") == 1
    assert "Traceback" not in log


@pytest.mark.parametrize("door", ["/v1/bug-reports", "/webhooks/zendesk"])
def test_a_body_that_never_completes_is_answered_408_and_closed_at_the_deadline(
    strict: IntakeServer, redis_client: redis.Redis, door: str
) -> None:
    before = strict.log_text()
    with connect(strict) as sock:
        sock.sendall(request_head(door, 200, bearer()) + b'{"session_id": ')
        answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    log = new_lines(strict, before, "did not arrive whole")
    assert log.count(f"POST {door} from 127.0.0.1:") == 1
    assert log.count("(body incomplete)") == 1
    assert "Traceback" not in log and "Exception" not in log
    assert redis_client.llen(queue_keys(keys.QUEUE_NAME)[0]) == 0


def test_headers_without_end_are_answered_431_once_past_32_kib(
    strict: IntakeServer,
) -> None:
    # httptools itself takes headers of any size (h11 stops at 16 KiB); sent fast, they would
    # fill memory well within the deadline.
    before = strict.log_text()
    with connect(strict) as sock:
        sock.sendall(b"POST /webhooks/zendesk HTTP/1.1\r\nHost: intake\r\n")
        try:
            for _ in range(10_000):  # up to 10 MB, far past the bound
                sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server (what the kernel buffered before that is not read)
        try:
            answer = until_closed(sock)
        except ConnectionResetError:
            answer = b"<reset>"
    log = new_lines(strict, before, "headers are larger than 32 KiB")
    assert log.count("a request from 127.0.0.1:") == 1 and "Traceback" not in log
    # Refused on the bound, not left to the deadline (408).
    assert "did not arrive whole" not in log
    assert answer.startswith(b"HTTP/1.1 431") or answer == b"<reset>", answer


def test_a_large_body_sent_in_one_write_with_its_headers_is_not_taken_for_headers(
    strict: IntakeServer, redis_client: redis.Redis
) -> None:
    listed = [{**event, "description": "d" * 800} for event in events(1000, "big")]
    body = json.dumps(listed).encode()
    assert 800_000 < len(body) < 1024 * 1024
    with connect(strict) as sock:
        sock.sendall(request_head("/v1/bug-reports", len(body), bearer()) + body)
        answer = one_answer(sock)
    assert answer.startswith("HTTP/1.1 202"), answer[:200]
    assert redis_client.llen(queue_keys(keys.QUEUE_NAME)[0]) == 1000


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline_without_a_word(
    strict: IntakeServer,
) -> None:
    before = strict.log_text()
    with connect(strict) as sock:
        assert until_closed(sock) == b""
    assert strict.log_text()[len(before) :] == ""


def test_a_client_that_leaves_mid_body_makes_one_line_and_no_traceback(
    strict: IntakeServer, redis_client: redis.Redis
) -> None:
    before = strict.log_text()
    with connect(strict) as sock:
        sock.sendall(request_head("/v1/bug-reports", 200, bearer()) + b'{"session_id": ')
        time.sleep(0.2)  # the server reads the first part of the body
    log = new_lines(strict, before, "left before its request arrived whole")
    assert log.count("POST /v1/bug-reports from 127.0.0.1:") == 1
    assert "Traceback" not in log and "Exception" not in log
    assert redis_client.llen(queue_keys(keys.QUEUE_NAME)[0]) == 0


def test_slow_senders_hold_connections_and_body_slots_while_a_delivery_gets_202(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # A deadline long enough that every slow sender is still held when the delivery comes.
    config = intake_config(redis_url, read_deadline_seconds=30, max_bodies_read_at_once=SLOTS)
    with IntakeServer(config, tmp_path) as server:
        slow_heads, slow_bodies = [], []
        try:
            for _ in range(200):
                sock = connect(server)
                sock.sendall(b"POST /webhooks/zendesk HTTP/1.1\r\nHost: intake\r\n")
                slow_heads.append(sock)
            # Slow bodies until one finds every slot taken: refused at once, not held.
            refused = ""
            for _ in range(SLOTS + 5):
                sock = connect(server)
                sock.settimeout(2)
                sock.sendall(request_head("/v1/bug-reports", 500, bearer()) + b'{"session_id"')
                try:
                    refused = one_answer(sock)
                except TimeoutError:
                    slow_bodies.append(sock)  # held: it took a slot
                    continue
                sock.close()
                break
            assert len(slow_bodies) == SLOTS
            assert refused.startswith("HTTP/1.1 503"), refused
            assert "retry-after: 1" in refused.lower() and "send again later" in refused
            # A genuine delivery, its body whole, needs no slot.
            body = json.dumps({"ticket_id": "88", "session_id": "held-up"}).encode()
            answer = requests.post(
                server.url + "/webhooks/zendesk", data=body, headers=zendesk_headers(body)
            )
            assert answer.status_code == 202, answer.text
            # ...answered while every slow sender was still held.
            assert all(is_open(sock) for sock in slow_heads + slow_bodies)
        finally:
            for sock in slow_heads + slow_bodies:
                sock.close()
    assert redis_client.llen(queue_keys(keys.QUEUE_NAME)[0]) == 1


# --------------------------------------------------------------------------- floods


def events(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"session_id": f"{prefix}-{n}", "zendesk_ticket": n + 1} for n in range(count)]


def test_a_token_over_its_events_per_minute_is_429_on_every_server_process(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = intake_config(redis_url, events_per_minute_per_token=1000)
    port = free_port()
    with (
        IntakeServer(config, tmp_path / "a") as first,
        IntakeServer(config, tmp_path / "b", metrics_port=port) as second,
    ):
        url = "/v1/bug-reports"
        assert requests.post(first.url + url, json=events(1000, "a"), headers=bearer()).ok
        # The same token at another server: the budget is shared through Redis.
        over = requests.post(second.url + url, json=events(500, "b"), headers=bearer())
        assert over.status_code == 429, over.text
        assert int(over.headers["Retry-After"]) >= 1
        assert "1000 events per minute" in over.json()["error"]
        body = json.dumps({"session_id": "c", "zendesk_ticket": "1"}).encode()
        assert (
            requests.post(second.url + "/webhooks/posthog", body, headers=bearer()).status_code
            == 429
        )
        # Another token has its own budget.
        other = requests.post(
            second.url + url, json=events(1, "d"), headers=bearer(INTAKE_TOKENS[1])
        )
        assert other.status_code == 202
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert total(samples, "replay_attach_intake_refused_total", reason="rate_limited") == 2
    assert total(samples, "replay_attach_intake_deliveries_total", status="429") == 2
    assert redis_client.llen(queue_keys(keys.QUEUE_NAME)[0]) == 1001
    for name in redis_client.keys(keys.REDIS_PREFIX + ":intake-rate:*"):
        assert not any(token.encode() in name for token in INTAKE_TOKENS)


def test_a_resend_over_the_tokens_rate_is_answered_as_the_first_was(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = intake_config(redis_url, events_per_minute_per_token=1000)
    with IntakeServer(config, tmp_path) as server:
        url = server.url + "/v1/bug-reports"
        keyed = {**bearer(), "Idempotency-Key": "answer-lost"}
        first = requests.post(url, json=events(1000, "a"), headers=keyed)
        assert first.status_code == 202, first.text
        assert requests.post(url, json=events(1, "b"), headers=bearer()).status_code == 429
        again = requests.post(url, json=events(1000, "a"), headers=keyed)
        assert again.status_code == 202, again.text
        assert again.json()["job_ids"] == first.json()["job_ids"]
        assert again.headers["Idempotent-Replayed"] == "true"
    assert redis_client.llen(queue_keys(keys.QUEUE_NAME)[0]) == 1000


def test_every_door_sheds_new_deliveries_once_the_queue_is_full(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    config = intake_config(redis_url, max_queue_depth=1000)
    queue_key = queue_keys(keys.QUEUE_NAME)[0]
    with IntakeServer(config, tmp_path, metrics_port=port) as server:
        resend = {**bearer(), "Idempotency-Key": "before-the-flood"}
        event = {"session_id": "early", "zendesk_ticket": 1}
        accepted = requests.post(server.url + "/v1/bug-reports", json=event, headers=resend)
        assert accepted.status_code == 202
        redis_client.rpush(queue_key, *[f"waiting-{n}" for n in range(999)])

        zendesk = json.dumps({"ticket_id": "5", "session_id": "z"}).encode()
        jira = json.dumps(
            {
                "timestamp": 1764590400000,
                "webhookEvent": "jira:issue_created",
                "issue": {"key": "BUG-1", "fields": {"customfield_10042": "j"}},
            }
        ).encode()
        posthog = json.dumps({"session_id": "p", "zendesk_ticket": "5"}).encode()
        deliveries = [
            ("/v1/bug-reports", json.dumps(events(1, "late")).encode(), bearer()),
            ("/webhooks/zendesk", zendesk, zendesk_headers(zendesk)),
            ("/webhooks/jira", jira, jira_headers(jira)),
            ("/webhooks/posthog", posthog, posthog_headers(posthog, "msg-flood")),
        ]
        for door, body, headers in deliveries:
            answer = requests.post(server.url + door, data=body, headers=headers)
            assert answer.status_code == 503, (door, answer.text)
            assert int(answer.headers["Retry-After"]) > 0
            assert "the queue is full" in answer.json()["error"]
        assert redis_client.llen(queue_key) == 1000
        # A resend of a delivery taken before is still answered with its job ids.
        again = requests.post(server.url + "/v1/bug-reports", json=event, headers=resend)
        assert again.status_code == 202 and again.json() == accepted.json()
        # Below the depth again, deliveries are taken.
        redis_client.lpop(queue_key)
        body = json.dumps(events(1, "after")).encode()
        assert requests.post(server.url + "/v1/bug-reports", data=body, headers=bearer()).ok
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert total(samples, "replay_attach_intake_refused_total", reason="queue_full") == 4
