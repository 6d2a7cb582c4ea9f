"""The Zendesk and Jira doubles fire signed webhooks, as a Zendesk trigger and a Jira admin
webhook would, at a real HTTP server started here; every signature is checked with this file's
own HMAC, not the sender's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from sandbox.app import Sandbox
from sandbox.doubles import JiraDouble, ZendeskDouble
from sandbox.doubles.webhooks import WebhookSender
from sandbox.doubles.zendesk_webhooks import TEST_SIGNING_SECRET, WEBHOOK_ID, signature

ZENDESK_SECRET = base64.b64encode(b"z" * 32).decode()
JIRA_SECRET = "jira-webhook-secret"
FIELD = ZendeskDouble.SESSION_FIELD_ID
FAST = (0.01, 0.01, 0.01, 0.01)


# --------------------------------------------------------------------- the receiving end


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server that records each POST and answers with the next scripted status
    (200 once the script is used up)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[int] = deque()
        self.delay = 0.0  # seconds before the first answer (a receiver too slow to answer)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body))
                if receiver.delay:
                    delay, receiver.delay = receiver.delay, 0.0
                    time.sleep(delay)
                status = receiver.answers.popleft() if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def zendesk(receiver: Receiver) -> Iterator[ZendeskDouble]:
    with ZendeskDouble() as double:
        double.send_webhooks(f"{receiver.url}/webhooks/zendesk", ZENDESK_SECRET, FIELD)
        double.webhooks.backoff = FAST
        yield double


@pytest.fixture
def jira(receiver: Receiver) -> Iterator[JiraDouble]:
    with JiraDouble() as double:
        double.send_webhooks(f"{receiver.url}/webhooks/jira", JIRA_SECRET)
        double.webhooks.backoff = FAST
        yield double


def zendesk_signature_ok(secret: str, received: Received) -> bool:
    timestamp = received.headers["x-zendesk-webhook-signature-timestamp"]
    mac = hmac.new(secret.encode(), timestamp.encode() + received.body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    return hmac.compare_digest(expected, received.headers["x-zendesk-webhook-signature"])


def jira_signature_ok(secret: str, received: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers["x-hub-signature"])


def zd_session(double: ZendeskDouble) -> requests.Session:
    session = requests.Session()
    session.auth = (f"{double.email}/token", double.api_token)
    return session


# --------------------------------------------------------------------- Zendesk


def test_a_ticket_created_with_a_session_id_fires_a_signed_trigger_webhook(
    zendesk: ZendeskDouble, receiver: Receiver
) -> None:
    zendesk.add_ticket(201, subject="Checkout broken", custom_fields={FIELD: "sess-201"})
    assert zendesk.webhooks.wait_idle(5)
    [got] = receiver.wait_for(1)
    assert got.path == "/webhooks/zendesk"
    # Placeholders render as text, the status as its display name.
    assert got.json == {"ticket_id": "201", "session_id": "sess-201", "status": "Open"}
    assert got.headers["content-type"] == "application/json"
    timestamp = got.headers["x-zendesk-webhook-signature-timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", timestamp)
    assert zendesk_signature_ok(ZENDESK_SECRET, got)
    assert not zendesk_signature_ok("another secret", got)
    assert got.headers["x-zendesk-webhook-id"] == WEBHOOK_ID
    assert got.headers["x-zendesk-webhook-invocation-id"]
    [attempt] = zendesk.webhooks.attempts
    assert attempt.status == 200 and attempt.delivered and attempt.body == got.body
    # The ticket keeps its custom field, as GET shows it.
    ticket = zd_session(zendesk).get(f"{zendesk.url}/api/v2/tickets/201.json", timeout=5).json()
    assert ticket["ticket"]["custom_fields"] == [{"id": FIELD, "value": "sess-201"}]


def test_a_ticket_created_through_the_api_fires_and_solving_it_fires_again(
    zendesk: ZendeskDouble, receiver: Receiver
) -> None:
    session = zd_session(zendesk)
    created = session.post(
        f"{zendesk.url}/api/v2/tickets.json",
        json={
            "ticket": {
                "subject": "Upload fails",
                "comment": {"body": "It fails."},
                "custom_fields": [{"id": 123, "value": "other"}, {"id": FIELD, "value": "s-9"}],
            }
        },
        timeout=5,
    )
    assert created.status_code == 201
    ticket_id = created.json()["ticket"]["id"]
    assert {"id": FIELD, "value": "s-9"} in created.json()["ticket"]["custom_fields"]
    solved = session.put(
        f"{zendesk.url}/api/v2/tickets/{ticket_id}.json",
        json={"ticket": {"status": "solved"}},
        timeout=5,
    )
    assert solved.status_code == 200
    assert zendesk.webhooks.wait_idle(5)
    first, second = receiver.wait_for(2)
    assert first.json == {"ticket_id": str(ticket_id), "session_id": "s-9", "status": "New"}
    assert second.json == {"ticket_id": str(ticket_id), "session_id": "s-9", "status": "Solved"}
    assert zendesk_signature_ok(ZENDESK_SECRET, first) and zendesk_signature_ok(
        ZENDESK_SECRET, second
    )
    # Two deliveries, two invocation ids; one webhook.
    ids = {r.headers["x-zendesk-webhook-invocation-id"] for r in (first, second)}
    assert len(ids) == 2
    assert first.headers["x-zendesk-webhook-id"] == second.headers["x-zendesk-webhook-id"]


def test_no_zendesk_webhook_without_the_session_field(
    zendesk: ZendeskDouble, receiver: Receiver
) -> None:
    zendesk.add_ticket(301)
    zendesk.add_ticket(302, custom_fields={FIELD: ""})
    zendesk.add_ticket(303, custom_fields={123: "not the session field"})
    session = zd_session(zendesk)
    created = session.post(
        f"{zendesk.url}/api/v2/tickets.json",
        json={"ticket": {"comment": {"body": "No session"}}},
        timeout=5,
    )
    ticket_id = created.json()["ticket"]["id"]
    session.put(
        f"{zendesk.url}/api/v2/tickets/{ticket_id}.json",
        json={"ticket": {"status": "solved"}},
        timeout=5,
    )
    bad = session.post(
        f"{zendesk.url}/api/v2/tickets.json",
        json={"ticket": {"comment": {"body": "x"}, "custom_fields": {"id": FIELD}}},
        timeout=5,
    )
    assert bad.status_code == 400
    assert zendesk.webhooks.wait_idle(5)
    time.sleep(0.1)
    assert receiver.received == [] and zendesk.webhooks.attempts == []


def test_no_zendesk_webhook_before_send_webhooks(receiver: Receiver) -> None:
    with ZendeskDouble() as double:
        double.add_ticket(1, custom_fields={FIELD: "sess"})
        assert double.webhook is None and double.webhooks.attempts == []


def test_the_signing_function_matches_zendesks_scheme_with_its_test_secret() -> None:
    timestamp = "2026-12-01T10:00:00Z"
    body = b'{"ticket_id": "35436", "session_id": "abc", "status": "Open"}'
    mac = hmac.new(TEST_SIGNING_SECRET.encode(), timestamp.encode() + body, hashlib.sha256)
    assert TEST_SIGNING_SECRET == "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
    assert (
        signature(TEST_SIGNING_SECRET, timestamp, body) == base64.b64encode(mac.digest()).decode()
    )
    # The key is the secret's text, not its base64-decoded bytes.
    decoded = hmac.new(
        base64.b64decode(TEST_SIGNING_SECRET), timestamp.encode() + body, hashlib.sha256
    )
    assert (
        signature(TEST_SIGNING_SECRET, timestamp, body)
        != base64.b64encode(decoded.digest()).decode()
    )


# --------------------------------------------------------------------- Jira


def test_an_issue_created_with_a_session_id_fires_a_signed_issue_created(
    jira: JiraDouble, receiver: Receiver
) -> None:
    before = int(time.time() * 1000)
    issue = jira.add_issue(
        "BUG-9", summary="Avatar upload fails", fields={"customfield_10042": "sess-9"}
    )
    assert jira.webhooks.wait_idle(5)
    [got] = receiver.wait_for(1)
    assert got.path == "/webhooks/jira"
    assert got.headers["content-type"] == "application/json"
    assert jira_signature_ok(JIRA_SECRET, got)
    assert not jira_signature_ok("another secret", got)
    assert got.headers["x-atlassian-webhook-identifier"]
    assert "x-atlassian-webhook-retry" not in got.headers
    event = got.json
    assert event["webhookEvent"] == "jira:issue_created"
    assert event["issue_event_type_name"] == "issue_created"
    assert before <= event["timestamp"] <= int(time.time() * 1000)
    assert event["issue"]["id"] == issue["id"] and event["issue"]["id"].isdigit()
    assert event["issue"]["key"] == "BUG-9"
    assert event["issue"]["self"] == f"{jira.url}/rest/api/2/issue/{issue['id']}"
    assert event["issue"]["fields"]["summary"] == "Avatar upload fails"
    assert event["issue"]["fields"]["customfield_10042"] == "sess-9"
    assert event["user"]["accountId"]
    assert "changelog" not in event


def test_an_issue_created_through_the_api_takes_the_next_key_and_fires(
    jira: JiraDouble, receiver: Receiver
) -> None:
    jira.add_issue("BUG-4", summary="An earlier issue")
    auth = (jira.email, jira.api_token)
    fields = {
        "project": {"key": "BUG"},
        "summary": "CSV export empty",
        "customfield_10042": "s-api",
    }
    created = requests.post(f"{jira.url}/rest/api/2/issue", json={"fields": fields}, auth=auth)
    assert created.status_code == 201 and created.json()["key"] == "BUG-5"
    assert jira.webhooks.wait_idle(5)
    [got] = receiver.wait_for(1)
    assert got.json["issue"]["key"] == "BUG-5"
    assert got.json["issue"]["fields"]["customfield_10042"] == "s-api"
    no_summary = {"fields": {"project": {"key": "BUG"}}}
    assert (
        requests.post(f"{jira.url}/rest/api/2/issue", json=no_summary, auth=auth).status_code == 400
    )
    wrong = requests.post(f"{jira.url}/rest/api/2/issue", json={"fields": fields}, auth=("x", "y"))
    assert wrong.status_code == 401
    assert len(receiver.received) == 1


def test_setting_the_session_field_fires_issue_updated_with_its_changelog(
    jira: JiraDouble, receiver: Receiver
) -> None:
    jira.add_issue("BUG-10", summary="No session yet")
    jira.set_session_field("BUG-10", "sess-10")
    jira.set_session_field("BUG-10", "sess-10")  # unchanged: Jira reports no change
    jira.set_session_field("BUG-10", "sess-11")
    assert jira.webhooks.wait_idle(5)
    first, second = receiver.wait_for(2)
    time.sleep(0.1)
    assert len(receiver.received) == 2
    for got in (first, second):
        assert jira_signature_ok(JIRA_SECRET, got)
        assert got.json["webhookEvent"] == "jira:issue_updated"
        assert got.json["issue_event_type_name"] == "issue_updated"
    assert first.json["changelog"]["items"] == [
        {
            "field": "Session id",
            "fieldtype": "custom",
            "fieldId": "customfield_10042",
            "from": None,
            "fromString": None,
            "to": None,
            "toString": "sess-10",
        }
    ]
    assert second.json["changelog"]["items"][0]["fromString"] == "sess-10"
    assert second.json["changelog"]["items"][0]["toString"] == "sess-11"
    assert first.json["changelog"]["id"] != second.json["changelog"]["id"]
    assert second.json["issue"]["fields"]["customfield_10042"] == "sess-11"
    identifiers = {r.headers["x-atlassian-webhook-identifier"] for r in (first, second)}
    assert len(identifiers) == 2


def test_no_jira_webhook_without_the_session_field(jira: JiraDouble, receiver: Receiver) -> None:
    jira.add_issue("BUG-11")
    jira.add_issue("BUG-12", fields={"customfield_10042": ""})
    jira.add_issue("BUG-13", fields={"customfield_99999": "another field"})
    jira.set_session_field("BUG-11", "")
    assert jira.webhooks.wait_idle(5)
    time.sleep(0.1)
    assert receiver.received == [] and jira.webhooks.attempts == []


def test_a_custom_session_field_is_the_one_watched_and_sent(receiver: Receiver) -> None:
    with JiraDouble() as double:
        double.send_webhooks(f"{receiver.url}/webhooks/jira", JIRA_SECRET, "customfield_20001")
        double.add_issue("BUG-1", fields={"customfield_10042": "ignored"})
        double.add_issue("BUG-2", fields={"customfield_20001": "sess-2"})
        assert double.webhooks.wait_idle(5)
        [got] = receiver.wait_for(1)
        assert got.json["issue"]["key"] == "BUG-2"
        assert got.json["issue"]["fields"]["customfield_20001"] == "sess-2"


# --------------------------------------------------------------------- retries


def test_a_503_is_retried_with_the_same_invocation_id(
    zendesk: ZendeskDouble, receiver: Receiver
) -> None:
    receiver.answers.extend([503, 503])
    zendesk.add_ticket(401, custom_fields={FIELD: "sess-401"})
    assert zendesk.webhooks.wait_idle(5)
    received = receiver.wait_for(3)
    assert len(received) == 3
    assert len({r.headers["x-zendesk-webhook-invocation-id"] for r in received}) == 1
    assert len({r.body for r in received}) == 1
    assert all(zendesk_signature_ok(ZENDESK_SECRET, r) for r in received)
    attempts = zendesk.webhooks.attempts
    assert [(a.number, a.status) for a in attempts] == [(1, 503), (2, 503), (3, 200)]


def test_a_503_is_retried_with_the_same_jira_identifier(
    jira: JiraDouble, receiver: Receiver
) -> None:
    receiver.answers.append(503)
    jira.add_issue("BUG-20", fields={"customfield_10042": "sess-20"})
    assert jira.webhooks.wait_idle(5)
    first, retry = receiver.wait_for(2)
    assert (
        first.headers["x-atlassian-webhook-identifier"]
        == retry.headers["x-atlassian-webhook-identifier"]
    )
    assert first.body == retry.body and jira_signature_ok(JIRA_SECRET, retry)
    assert retry.headers["x-atlassian-webhook-retry"] == "1"
    assert [a.status for a in jira.webhooks.attempts] == [503, 200]


def test_a_400_is_not_retried(zendesk: ZendeskDouble, receiver: Receiver) -> None:
    receiver.answers.append(400)
    zendesk.add_ticket(402, custom_fields={FIELD: "sess-402"})
    assert zendesk.webhooks.wait_idle(5)
    time.sleep(0.1)
    assert len(receiver.received) == 1
    [attempt] = zendesk.webhooks.attempts
    assert attempt.status == 400 and not attempt.delivered and not attempt.retryable


@pytest.mark.parametrize("status", [408, 429, 500])
def test_other_passing_failures_are_retried(receiver: Receiver, status: int) -> None:
    receiver.answers.append(status)
    sender = WebhookSender(backoff=FAST)
    sender.post(f"{receiver.url}/x", b"{}", {"Content-Type": "application/json"})
    assert sender.wait_idle(5)
    assert [a.status for a in sender.attempts] == [status, 200]
    sender.stop()


def test_an_unreachable_receiver_gets_five_attempts_then_none() -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now: connection refused
    sender = WebhookSender(backoff=FAST)
    sender.post(f"http://127.0.0.1:{port}/x", b"{}", {})
    assert sender.wait_idle(5)
    attempts = sender.attempts
    assert [a.number for a in attempts] == [1, 2, 3, 4, 5]
    assert all(a.status is None and a.error for a in attempts)
    sender.stop()


def test_a_receiver_too_slow_to_answer_is_retried(receiver: Receiver) -> None:
    receiver.delay = 1.0
    sender = WebhookSender(backoff=FAST, timeout=0.3)
    sender.post(f"{receiver.url}/x", b"{}", {})
    assert sender.wait_idle(10)
    attempts = sender.attempts
    assert attempts[0].status is None and "timed out" in str(attempts[0].error)
    assert attempts[-1].status == 200
    sender.stop()


def test_the_default_backoff_is_the_vendors_and_stop_ends_the_thread(receiver: Receiver) -> None:
    sender = WebhookSender(name="test-sender")
    assert sender.backoff == (0.2, 0.5, 1.0, 2.0) and sender.max_attempts == 5
    receiver.answers.append(503)
    sender.post(f"{receiver.url}/x", b"{}", {})
    receiver.wait_for(1)
    started = time.monotonic()
    sender.stop()  # cuts the 0.2 s wait before the retry short
    assert time.monotonic() - started < 0.2
    assert not any(t.name == "test-sender" for t in threading.enumerate())
    time.sleep(0.3)
    assert len(receiver.received) == 1
    # A stopped sender sends again when asked (a double restarted after an outage).
    sender.post(f"{receiver.url}/x", b"{}", {})
    assert sender.wait_idle(5) and len(receiver.wait_for(2)) == 2
    sender.stop()
    with pytest.raises(ValueError):
        sender.post("file:///etc/passwd", b"{}", {})


# --------------------------------------------------------------------- Sandbox and command


def test_sandbox_points_both_doubles_at_an_intake_with_fresh_secrets(receiver: Receiver) -> None:
    with Sandbox() as box:
        env = box.env()
        assert "ZENDESK_WEBHOOK_SECRET" not in env and "JIRA_WEBHOOK_SECRET" not in env
        box.send_webhooks_to(receiver.url + "/")
        env = box.env()
        assert len(base64.b64decode(env["ZENDESK_WEBHOOK_SECRET"], validate=True)) == 32
        assert len(env["JIRA_WEBHOOK_SECRET"]) >= 43
        assert env["JIRA_SESSION_FIELD"] == "customfield_10042"
        box.zendesk.add_ticket(501, custom_fields={Sandbox.ZENDESK_SESSION_FIELD_ID: "sess-501"})
        box.jira.add_issue("BUG-50", fields={env["JIRA_SESSION_FIELD"]: "sess-50"})
        assert box.zendesk.webhooks.wait_idle(5) and box.jira.webhooks.wait_idle(5)
        by_path = {r.path: r for r in receiver.wait_for(2)}
        assert zendesk_signature_ok(env["ZENDESK_WEBHOOK_SECRET"], by_path["/webhooks/zendesk"])
        assert jira_signature_ok(env["JIRA_WEBHOOK_SECRET"], by_path["/webhooks/jira"])
        # Another sandbox, other secrets.
        other = Sandbox()
        other.send_webhooks_to(receiver.url)
        assert other.zendesk.webhook and other.jira.webhook
        assert other.zendesk.webhook.secret != env["ZENDESK_WEBHOOK_SECRET"]
        assert other.jira.webhook.secret != env["JIRA_WEBHOOK_SECRET"]


def test_sandbox_command_refuses_an_intake_url_that_is_not_http() -> None:
    from worker.cli.run import sandbox

    result = CliRunner().invoke(sandbox, ["--intake-url", "ftp://127.0.0.1:8080"])
    assert result.exit_code == 2
    assert "http:// or https://" in result.output
