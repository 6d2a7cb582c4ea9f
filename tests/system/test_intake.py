"""``replay-attach serve``: each door over real HTTP, signatures computed here independently."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from dramatiq import Message
from openapi_spec_validator import validate

from tests.intake_server import (
    ALL_SECRETS,
    INTAKE_TOKENS,
    JIRA_FIELD,
    JIRA_SECRET,
    POSTHOG_HOST,
    IntakeServer,
    bearer,
    intake_config,
    jira_headers,
    posthog_headers,
    zendesk_headers,
)
from tests.scenarios import wait_for
from worker import keys
from worker.jobs.messages import ACTOR_NAME, queue_keys


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    with IntakeServer(intake_config(redis_url), tmp_path_factory.mktemp("intake")) as running:
        yield running


@pytest.fixture()
def intake(server: IntakeServer, redis_client: redis.Redis) -> str:
    """The server's URL, with the test database flushed."""
    return server.url


def queued(client: redis.Redis) -> list[dict[str, Any]]:
    """The events waiting on the bug-report queue, in order."""
    queue_key, messages_key = queue_keys(keys.QUEUE_NAME)
    events = []
    for redis_id in client.lrange(queue_key, 0, -1):
        data = client.hget(messages_key, redis_id)
        assert data is not None, "a queued id without its message"
        message = Message.decode(data)
        assert message.actor_name == ACTOR_NAME
        events.append({"job_id": message.message_id, **message.args[0]})
    return events


def post(url: str, body: Any, headers: dict[str, str]) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers=headers, timeout=10)


# --------------------------------------------------------------------------- POST /v1/bug-reports


def test_one_event_is_enqueued_and_its_job_id_answered(
    intake: str, redis_client: redis.Redis
) -> None:
    answer = post(intake + "/v1/bug-reports", {"session_id": "s-1", "zendesk_ticket": 7}, bearer())
    assert answer.status_code == 202, answer.text
    (event,) = queued(redis_client)
    assert answer.json() == {"job_ids": [event["job_id"]]}
    assert event["session_id"] == "s-1" and event["zendesk_ticket"] == 7


def test_a_list_is_enqueued_whole_in_order(intake: str, redis_client: redis.Redis) -> None:
    events = [{"session_id": f"s-{i}", "jira_issue": f"BUG-{i + 1}"} for i in range(3)]
    answer = post(intake + "/v1/bug-reports", events, bearer())
    assert answer.status_code == 202
    assert [e["session_id"] for e in queued(redis_client)] == ["s-0", "s-1", "s-2"]
    assert answer.json()["job_ids"] == [e["job_id"] for e in queued(redis_client)]


def test_a_list_with_one_bad_event_enqueues_nothing_and_names_it(
    intake: str, redis_client: redis.Redis
) -> None:
    events = [
        {"session_id": "s-1", "zendesk_ticket": 1},
        {"session_id": "s-2", "zendesk_ticket": "twelve"},
        {"session_id": "s-3", "zendesk_ticket": 3},
    ]
    answer = post(intake + "/v1/bug-reports", events, bearer())
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("event 2: zendesk_ticket:")
    assert queued(redis_client) == []


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "holds no events"),
        (b'"just a string"', "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (json.dumps({"session_id": "s"}).encode(), "exactly one of zendesk_ticket and jira_issue"),
        (json.dumps({"session_id": "s", "zendesk_ticket": 1, "tiket": 2}).encode(), "tiket"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_invalid_json_or_event_is_400_naming_the_problem(
    intake: str, redis_client: redis.Redis, body: bytes, names: str
) -> None:
    answer = post(intake + "/v1/bug-reports", body, bearer())
    assert answer.status_code == 400
    assert names in answer.json()["error"]
    assert queued(redis_client) == []


def test_over_1000_events_is_refused(intake: str, redis_client: redis.Redis) -> None:
    events = [{"session_id": f"s-{i}", "zendesk_ticket": 1} for i in range(1001)]
    answer = post(intake + "/v1/bug-reports", events, bearer())
    assert answer.status_code == 400 and "at most 1000" in answer.json()["error"]
    assert queued(redis_client) == []


def test_1000_events_are_enqueued(intake: str, redis_client: redis.Redis) -> None:
    events = [{"session_id": f"s-{i}", "zendesk_ticket": i + 1} for i in range(1000)]
    answer = post(intake + "/v1/bug-reports", events, bearer())
    assert answer.status_code == 202
    assert len(answer.json()["job_ids"]) == 1000 == len(queued(redis_client))


def test_idempotency_key_returns_the_same_job_ids_and_enqueues_once(
    intake: str, redis_client: redis.Redis
) -> None:
    event = {"session_id": "s-1", "zendesk_ticket": 7}
    headers = {**bearer(), "Idempotency-Key": str(uuid.uuid4())}
    first = post(intake + "/v1/bug-reports", event, headers)
    again = post(intake + "/v1/bug-reports", event, headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(queued(redis_client)) == 1
    # The key is remembered for at least 24 hours.
    (key,) = redis_client.keys(keys.REDIS_PREFIX + ":delivery:*")
    assert redis_client.ttl(key) >= 24 * 3600 - 60


def test_idempotency_key_reused_for_another_body_is_422(
    intake: str, redis_client: redis.Redis
) -> None:
    headers = {**bearer(), "Idempotency-Key": "order-42"}
    assert post(intake + "/v1/bug-reports", {"session_id": "a", "zendesk_ticket": 1}, headers).ok
    other = post(intake + "/v1/bug-reports", {"session_id": "b", "zendesk_ticket": 1}, headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]
    assert [e["session_id"] for e in queued(redis_client)] == ["a"]


def test_without_idempotency_key_each_request_enqueues(
    intake: str, redis_client: redis.Redis
) -> None:
    event = {"session_id": "s-1", "zendesk_ticket": 7}
    for _ in range(2):
        assert post(intake + "/v1/bug-reports", event, bearer()).status_code == 202
    assert len(queued(redis_client)) == 2


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", "Basic " + INTAKE_TOKENS[0], "Bearer ", "Bearer"],
)
def test_missing_or_wrong_token_is_401_with_one_answer(
    intake: str, redis_client: redis.Redis, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = post(intake + "/v1/bug-reports", {"session_id": "s", "zendesk_ticket": 1}, headers)
    assert answer.status_code == 401
    assert answer.json() == {"error": "missing or invalid credentials"}
    assert queued(redis_client) == []


def test_every_configured_token_opens_the_door(intake: str, redis_client: redis.Redis) -> None:
    for token in INTAKE_TOKENS:
        event = {"session_id": "s", "zendesk_ticket": 1}
        assert post(intake + "/v1/bug-reports", event, bearer(token)).status_code == 202
    assert len(queued(redis_client)) == 2


def test_not_json_is_415(intake: str, redis_client: redis.Redis) -> None:
    headers = {**bearer(), "Content-Type": "text/plain"}
    answer = post(intake + "/v1/bug-reports", {"session_id": "s", "zendesk_ticket": 1}, headers)
    assert answer.status_code == 415 and queued(redis_client) == []


def test_oversize_bodies_are_413(intake: str, redis_client: redis.Redis) -> None:
    one = {"session_id": "s", "zendesk_ticket": 1, "description": "x" * 2000, "pad": " " * 70_000}
    body = json.dumps(one).encode()
    assert post(intake + "/v1/bug-reports", body, bearer()).status_code == 413
    many = json.dumps([{"session_id": "s", "zendesk_ticket": 1}] * 40_000).encode()
    assert len(many) > 1024 * 1024
    assert post(intake + "/v1/bug-reports", many, bearer()).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams
        yield b'{"session_id": "s", "zendesk_ticket": 1, "description": "'
        for _ in range(300):
            yield b"x" * 4096

    streamed = requests.post(
        intake + "/v1/bug-reports", data=chunks(), headers=bearer(), timeout=10
    )
    assert streamed.status_code == 413
    assert queued(redis_client) == []


def test_a_replay_url_of_the_configured_host_gives_the_session(
    intake: str, redis_client: redis.Redis
) -> None:
    url = POSTHOG_HOST + "/project/1/replay/0192c0de-aaaa-bbbb?t=12"
    assert post(intake + "/v1/bug-reports", {"session_id": url, "zendesk_ticket": 3}, bearer()).ok
    assert queued(redis_client)[0]["session_id"] == "0192c0de-aaaa-bbbb"
    other = post(
        intake + "/v1/bug-reports",
        {"session_id": "https://eu.posthog.com/project/1/replay/abc", "zendesk_ticket": 3},
        bearer(),
    )
    assert other.status_code == 400 and POSTHOG_HOST in other.json()["error"]


# --------------------------------------------------------------------------- POST /webhooks/zendesk


def zendesk_body(ticket: str = "123", session: str = "0192-zd", status: str = "new") -> bytes:
    return json.dumps({"ticket_id": ticket, "session_id": session, "status": status}).encode()


def test_a_zendesk_signed_delivery_is_enqueued_with_numeric_string_ids(
    intake: str, redis_client: redis.Redis
) -> None:
    body = zendesk_body()
    answer = post(intake + "/webhooks/zendesk", body, zendesk_headers(body))
    assert answer.status_code == 202, answer.text
    (event,) = queued(redis_client)
    assert (event["zendesk_ticket"], event["session_id"]) == (123, "0192-zd")


@pytest.mark.parametrize("invocation", ["inv-1", None], ids=["by-invocation-id", "by-signature"])
def test_a_zendesk_delivery_sent_twice_enqueues_once(
    intake: str, redis_client: redis.Redis, invocation: str | None
) -> None:
    body = zendesk_body()
    headers = zendesk_headers(body, invocation=invocation)
    first = post(intake + "/webhooks/zendesk", body, headers)
    again = post(intake + "/webhooks/zendesk", body, headers)
    assert first.json() == again.json() and again.status_code == 202
    assert len(queued(redis_client)) == 1


@pytest.mark.parametrize("order", ["valid first", "forged first"])
def test_a_repeated_signature_header_is_read_as_its_first_copy(
    intake: str, redis_client: redis.Redis, order: str
) -> None:
    # As Starlette's own header lookup does: the first copy counts, the others are ignored.
    body = zendesk_body()
    headers = zendesk_headers(body)
    signatures = [headers.pop("X-Zendesk-Webhook-Signature"), "Zm9yZ2Vk"]
    if order == "forged first":
        signatures.reverse()
    parts = urlsplit(intake)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("POST", "/webhooks/zendesk")
        for name, value in headers.items():
            connection.putheader(name, value)
        for signature in signatures:
            connection.putheader("X-Zendesk-Webhook-Signature", signature)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        status = connection.getresponse().status
    finally:
        connection.close()
    assert status == (202 if order == "valid first" else 401)
    assert len(queued(redis_client)) == (1 if order == "valid first" else 0)


@pytest.mark.parametrize(
    "forge",
    [
        "wrong secret",
        "tampered body",
        "stale timestamp",
        "future timestamp",
        "no signature",
        "no timestamp",
        "garbage timestamp",
    ],
)
def test_a_forged_zendesk_delivery_is_401_and_enqueues_nothing(
    intake: str, redis_client: redis.Redis, forge: str
) -> None:
    body = zendesk_body()
    now = datetime.now(timezone.utc)
    headers = zendesk_headers(body)
    if forge == "wrong secret":
        headers = zendesk_headers(body, secret="c29tZW9uZSBlbHNlcyBzZWNyZXQ=")
    elif forge == "tampered body":
        body = zendesk_body(ticket="124")
    elif forge == "stale timestamp":
        headers = zendesk_headers(body, at=now - timedelta(minutes=6))
    elif forge == "future timestamp":
        headers = zendesk_headers(body, at=now + timedelta(minutes=6))
    elif forge == "no signature":
        del headers["X-Zendesk-Webhook-Signature"]
    elif forge == "no timestamp":
        del headers["X-Zendesk-Webhook-Signature-Timestamp"]
    elif forge == "garbage timestamp":
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = "yesterday"
    answer = post(intake + "/webhooks/zendesk", body, headers)
    assert answer.status_code == 401
    assert answer.json() == {"error": "missing or invalid credentials"}
    assert queued(redis_client) == []


def test_a_zendesk_delivery_with_an_empty_session_field_is_ignored_with_200(
    intake: str, redis_client: redis.Redis
) -> None:
    body = zendesk_body(session="")
    answer = post(intake + "/webhooks/zendesk", body, zendesk_headers(body))
    assert answer.status_code == 200 and "no session id" in answer.json()["ignored"]
    assert queued(redis_client) == []


def test_a_zendesk_delivery_with_a_bad_ticket_id_is_400_naming_it(
    intake: str, redis_client: redis.Redis
) -> None:
    body = zendesk_body(ticket="12a")
    answer = post(intake + "/webhooks/zendesk", body, zendesk_headers(body))
    assert answer.status_code == 400 and answer.json()["error"].startswith("ticket_id:")


def test_a_zendesk_delivery_may_give_a_replay_url(intake: str, redis_client: redis.Redis) -> None:
    body = zendesk_body(session=POSTHOG_HOST + "/project/1/replay/from-url")
    assert post(intake + "/webhooks/zendesk", body, zendesk_headers(body)).status_code == 202
    assert queued(redis_client)[0]["session_id"] == "from-url"


# --------------------------------------------------------------------------- POST /webhooks/jira


def jira_body(
    event: str = "jira:issue_created", session: Any = "0192-jira", changed: bool = True
) -> bytes:
    payload: dict[str, Any] = {
        "timestamp": 1764590400000,
        "webhookEvent": event,
        "issue": {"id": "10001", "key": "BUG-9", "fields": {"summary": "x", JIRA_FIELD: session}},
    }
    if event == "jira:issue_updated":
        field = JIRA_FIELD if changed else "summary"
        payload["changelog"] = {"id": "1", "items": [{"fieldId": field, "toString": "v"}]}
    return json.dumps(payload).encode()


def test_a_jira_signed_issue_created_is_enqueued(intake: str, redis_client: redis.Redis) -> None:
    body = jira_body()
    answer = post(intake + "/webhooks/jira", body, jira_headers(body, identifier="wh-1"))
    assert answer.status_code == 202, answer.text
    (event,) = queued(redis_client)
    assert (event["jira_issue"], event["session_id"]) == ("BUG-9", "0192-jira")


def test_a_jira_delivery_redelivered_enqueues_once(intake: str, redis_client: redis.Redis) -> None:
    body = jira_body()
    for _ in range(3):
        assert post(intake + "/webhooks/jira", body, jira_headers(body, identifier="wh-7")).ok
    assert len(queued(redis_client)) == 1


def test_a_jira_automation_request_with_the_bearer_secret_is_enqueued(
    intake: str, redis_client: redis.Redis
) -> None:
    body = jira_body()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {JIRA_SECRET}"}
    assert post(intake + "/webhooks/jira", body, headers).status_code == 202
    headers["Authorization"] = "Bearer " + INTAKE_TOKENS[0]  # an intake token is not Jira's
    assert post(intake + "/webhooks/jira", jira_body(session="x2"), headers).status_code == 401
    assert len(queued(redis_client)) == 1


def test_a_jira_update_enqueues_only_when_it_sets_the_session_field(
    intake: str, redis_client: redis.Redis
) -> None:
    other = jira_body("jira:issue_updated", changed=False)
    answer = post(intake + "/webhooks/jira", other, jira_headers(other))
    assert answer.status_code == 200 and JIRA_FIELD in answer.json()["ignored"]
    setting = jira_body("jira:issue_updated", changed=True)
    assert post(intake + "/webhooks/jira", setting, jira_headers(setting)).status_code == 202
    assert len(queued(redis_client)) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (jira_body("jira:issue_deleted"), "jira:issue_deleted"),
        (jira_body(session=None), "no session id"),
        (jira_body(session=""), "no session id"),
    ],
)
def test_jira_deliveries_with_nothing_to_do_are_ignored(
    intake: str, redis_client: redis.Redis, body: bytes, reason: str
) -> None:
    answer = post(intake + "/webhooks/jira", body, jira_headers(body))
    assert answer.status_code == 200 and reason in answer.json()["ignored"]
    assert queued(redis_client) == []


def test_a_forged_jira_delivery_is_401(intake: str, redis_client: redis.Redis) -> None:
    body = jira_body()
    wrong = jira_headers(body, secret="another-secret-0123456789")
    assert post(intake + "/webhooks/jira", body, wrong).status_code == 401
    tampered = jira_headers(body)
    assert post(intake + "/webhooks/jira", jira_body(session="x"), tampered).status_code == 401
    assert (
        post(intake + "/webhooks/jira", body, {"Content-Type": "application/json"}).status_code
        == 401
    )
    assert queued(redis_client) == []


# --------------------------------------------------------------------------- POST /webhooks/posthog


def posthog_body(ticket: str = "55", session: str = "0192-ph") -> bytes:
    return json.dumps({"session_id": session, "zendesk_ticket": ticket}).encode()


def test_a_posthog_signed_delivery_is_enqueued_and_its_retries_once(
    intake: str, redis_client: redis.Redis
) -> None:
    body = posthog_body()
    first = post(intake + "/webhooks/posthog", body, posthog_headers(body, "msg_1"))
    # A retry: same webhook-id, a fresh timestamp and signature.
    retry = post(intake + "/webhooks/posthog", body, posthog_headers(body, "msg_1"))
    assert first.status_code == retry.status_code == 202 and first.json() == retry.json()
    (event,) = queued(redis_client)
    assert (event["zendesk_ticket"], event["session_id"]) == (55, "0192-ph")


@pytest.mark.parametrize("forge", ["wrong secret", "tampered", "stale", "malformed signature"])
def test_a_forged_posthog_delivery_is_401(
    intake: str, redis_client: redis.Redis, forge: str
) -> None:
    body = posthog_body()
    headers = posthog_headers(body, "msg_2")
    if forge == "wrong secret":
        headers = posthog_headers(body, "msg_2", secret="whsec_" + "QUJD" * 8)
    elif forge == "tampered":
        body = posthog_body(ticket="56")
    elif forge == "stale":
        headers = posthog_headers(body, "msg_2", at=datetime.now().timestamp() - 400)
    elif forge == "malformed signature":
        headers["webhook-signature"] = "v1 no-comma-here"
    assert post(intake + "/webhooks/posthog", body, headers).status_code == 401
    assert queued(redis_client) == []


def test_a_posthog_destination_that_cannot_sign_uses_an_intake_token(
    intake: str, redis_client: redis.Redis
) -> None:
    body = posthog_body(session="")
    ignored = post(intake + "/webhooks/posthog", body, bearer())
    assert ignored.status_code == 200 and "no session id" in ignored.json()["ignored"]
    body = posthog_body()
    assert post(intake + "/webhooks/posthog", body, bearer()).status_code == 202
    assert post(intake + "/webhooks/posthog", body, bearer("Bearer nope")).status_code == 401
    assert len(queued(redis_client)) == 1


# --------------------------------------------------------------------------- doors off, health


def test_each_door_is_off_without_its_secret(redis_url: str, tmp_path: Path) -> None:
    only_zendesk = intake_config(
        redis_url,
        tokens=None,
        jira_webhook_secret=None,
        jira_session_field=None,
        posthog_webhook_secret=None,
    )
    with IntakeServer(only_zendesk, tmp_path / "zendesk-only") as server:
        for door in ("/v1/bug-reports", "/webhooks/jira", "/webhooks/posthog"):
            answer = post(server.url + door, {"session_id": "s", "zendesk_ticket": 1}, bearer())
            assert answer.status_code == 404, door
        body = zendesk_body()
        assert post(server.url + "/webhooks/zendesk", body, zendesk_headers(body)).ok


def test_health_and_readiness_answer_anyone(intake: str) -> None:
    assert requests.get(intake + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(intake + "/readyz", timeout=5).json() == {"status": "ready"}


def test_openapi_answers_the_holders_of_an_intake_token(intake: str) -> None:
    for headers in ({}, {"Authorization": f"Bearer {INTAKE_TOKENS[0][:-1]}"}):
        refused = requests.get(intake + "/openapi.json", headers=headers, timeout=5)
        assert refused.status_code == 401 and "paths" not in refused.text
    document = requests.get(
        intake + "/openapi.json", headers={"Authorization": f"Bearer {INTAKE_TOKENS[1]}"}, timeout=5
    ).json()
    validate(document)
    schema = document["components"]["schemas"]["BugReport"]
    assert {"session_id", "zendesk_ticket", "jira_issue"} <= set(schema["properties"])
    assert set(document["paths"]) >= {
        "/v1/bug-reports",
        "/webhooks/zendesk",
        "/webhooks/jira",
        "/webhooks/posthog",
    }
    assert {"408", "429", "503"} <= set(document["paths"]["/v1/bug-reports"]["post"]["responses"])


def test_the_public_port_serves_no_metrics(intake: str) -> None:
    answer = requests.get(intake + "/metrics", timeout=5)
    assert answer.status_code == 404 and "replay_attach" not in answer.text


def test_no_secret_in_any_answer_or_log_line(server: IntakeServer, intake: str) -> None:
    for door in ("/v1/bug-reports", "/webhooks/zendesk", "/webhooks/jira", "/webhooks/posthog"):
        for headers in (bearer(INTAKE_TOKENS[0] + "x"), {"Content-Type": "application/json"}):
            answer = post(intake + door, b"{}", headers)
            assert not any(secret in answer.text for secret in ALL_SECRETS)
    body = zendesk_body()
    post(intake + "/webhooks/zendesk", body, zendesk_headers(body))
    log = server.log_text()
    assert "/webhooks/zendesk: enqueued" in log  # the log is really written
    for secret in ALL_SECRETS:
        assert secret not in log


def test_require_distinct_id_refuses_events_without_one(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = intake_config(redis_url)
    config["posthog"]["require_distinct_id"] = True
    with IntakeServer(config, tmp_path) as strict:
        events = [
            {"session_id": "s-1", "zendesk_ticket": 1, "distinct_id": "anon-1"},
            {"session_id": "s-2", "zendesk_ticket": 1},
        ]
        answer = post(strict.url + "/v1/bug-reports", events, bearer())
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("event 2: distinct_id: is required")
        assert queued(redis_client) == []
        answer = post(strict.url + "/v1/bug-reports", events[:1], bearer())
        assert answer.status_code == 202
        assert queued(redis_client)[0]["distinct_id"] == "anon-1"


def test_what_the_server_built_at_start_is_kept_out_of_the_collectors_full_passes(
    redis_url: str,
) -> None:
    # A full pass over it held every request in flight for tens of milliseconds (bench/intake.py).
    from worker.config import Config
    from worker.intake.http_app import create_application

    app = create_application(Config.model_validate(intake_config(redis_url)))

    async def started() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    try:
        frozen = asyncio.run(started())
    finally:
        gc.unfreeze()
    assert frozen > 10_000


# --------------------------------------------------------------------------- tokens, whole


@pytest.mark.parametrize(
    "token",
    [INTAKE_TOKENS[0][:-1], INTAKE_TOKENS[0][:8], INTAKE_TOKENS[0] + "0", INTAKE_TOKENS[1] + "x"],
    ids=["all but one character", "a short prefix", "extended by a digit", "extended"],
)
def test_a_token_is_taken_only_whole(intake: str, redis_client: redis.Redis, token: str) -> None:
    event = {"session_id": "s", "zendesk_ticket": 1}
    for door in ("/v1/bug-reports", "/webhooks/posthog"):
        answer = post(intake + door, event, bearer(token))
        assert answer.status_code == 401, door
    assert queued(redis_client) == []


def test_an_idempotency_key_belongs_to_the_token_that_sent_it(
    intake: str, redis_client: redis.Redis
) -> None:
    event = {"session_id": "s-1", "zendesk_ticket": 7}
    key = {"Idempotency-Key": "shared-key-1"}
    first = post(intake + "/v1/bug-reports", event, {**bearer(INTAKE_TOKENS[0]), **key})
    other = post(intake + "/v1/bug-reports", event, {**bearer(INTAKE_TOKENS[1]), **key})
    assert first.status_code == other.status_code == 202
    assert "Idempotent-Replayed" not in other.headers
    assert first.json()["job_ids"] != other.json()["job_ids"]
    again = post(intake + "/v1/bug-reports", event, {**bearer(INTAKE_TOKENS[1]), **key})
    assert again.json() == other.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(queued(redis_client)) == 2
    for name in redis_client.keys("*"):
        assert not any(token.encode() in name for token in INTAKE_TOKENS)


# --------------------------------------------------------------------------- numbers and keys


LONG_NUMBER = b"1" * 5000


@pytest.mark.parametrize(
    ("door", "body", "field"),
    [
        ("/v1/bug-reports", b'{"session_id": "s", "zendesk_ticket": ' + LONG_NUMBER + b"}", ""),
        ("/webhooks/zendesk", b'{"session_id": "s", "ticket_id": ' + LONG_NUMBER + b"}", ""),
        ("/webhooks/posthog", b'{"session_id": "s", "replay_seconds": ' + LONG_NUMBER + b"}", ""),
        ("/webhooks/zendesk", '{"session_id": "s", "ticket_id": "²"}'.encode(), "ticket_id"),
        ("/webhooks/zendesk", '{"session_id": "s", "ticket_id": "①"}'.encode(), "ticket_id"),
        ("/webhooks/zendesk", b'{"session_id": "s", "ticket_id": "' + LONG_NUMBER + b'"}', ""),
        (
            "/webhooks/zendesk",
            '{"session_id": "s", "ticket_id": "1", "replay_seconds": "①"}'.encode(),
            "replay_seconds",
        ),
        (
            "/webhooks/posthog",
            '{"session_id": "s", "zendesk_ticket": "²"}'.encode(),
            "zendesk_ticket",
        ),
    ],
    ids=[
        "long integer, bug-reports",
        "long integer, zendesk",
        "long integer, posthog",
        "superscript two",
        "circled one",
        "long digit string",
        "circled replay_seconds",
        "superscript zendesk_ticket",
    ],
)
def test_numbers_python_cannot_convert_are_400_naming_the_field(
    intake: str, redis_client: redis.Redis, door: str, body: bytes, field: str
) -> None:
    if door == "/webhooks/zendesk":
        headers = zendesk_headers(body)
    elif door == "/webhooks/posthog":
        headers = posthog_headers(body, f"msg-{uuid.uuid4()}")
    else:
        headers = bearer()
    if not field:  # the field the number was given in
        field = {"/v1/bug-reports": "zendesk_ticket", "/webhooks/posthog": "replay_seconds"}.get(
            door, "ticket_id"
        )
    answer = post(intake + door, body, headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"{field}:"), answer.json()
    assert queued(redis_client) == []


def jira_resolution(key: Any = "BUG-9", solved: bool = True, at_ms: Any = 1764590400000) -> bytes:
    payload: dict[str, Any] = {
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10001", "key": key, "fields": {"summary": "x"}},
        "changelog": {
            "items": [{"fieldId": "resolution", "to": "1" if solved else None, "toString": None}]
        },
    }
    if at_ms is not None:
        payload["timestamp"] = at_ms
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("key", "at_ms", "names"),
    [
        ("BUG-9\n" + "x" * 3000, None, "issue.key:"),
        ("not a key", None, "issue.key:"),
        (42, None, "issue.key:"),
        ("BUG-9", "yesterday", "timestamp:"),
        ("BUG-9", None, "timestamp:"),
    ],
    ids=["3 KB with a newline", "not a key", "a number", "a text timestamp", "no timestamp"],
)
def test_a_jira_resolution_with_a_bad_key_or_time_is_400_and_records_nothing(
    intake: str, redis_client: redis.Redis, key: Any, at_ms: Any, names: str
) -> None:
    stamp = at_ms if at_ms is not None or names == "timestamp:" else 1764590400000
    body = jira_resolution(key, at_ms=stamp)
    answer = post(intake + "/webhooks/jira", body, jira_headers(body))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(names)
    assert redis_client.zcard(keys.SOLVED_TICKETS_KEY) == 0
    assert redis_client.keys(keys.REDIS_PREFIX + ":ticket-state-at:*") == []


# --------------------------------------------------------------------------- resent deliveries


def test_a_jira_delivery_resent_under_new_identifiers_enqueues_once(
    intake: str, redis_client: redis.Redis
) -> None:
    # X-Atlassian-Webhook-Identifier is not signed: a captured delivery can carry any.
    body = jira_body()
    for identifier in ("wh-1", "wh-2", None):
        answer = post(intake + "/webhooks/jira", body, jira_headers(body, identifier=identifier))
        assert answer.status_code == 202
    assert len(queued(redis_client)) == 1
    # Another delivery (Jira's timestamp differs) is another job.
    later = json.loads(body)
    later["timestamp"] += 1
    other = json.dumps(later).encode()
    assert post(intake + "/webhooks/jira", other, jira_headers(other, identifier="wh-1")).ok
    assert len(queued(redis_client)) == 2


@pytest.mark.parametrize("first", ["inv-1", None], ids=["with an id", "without"])
def test_a_zendesk_delivery_resent_under_another_invocation_id_enqueues_once(
    intake: str, redis_client: redis.Redis, first: str | None
) -> None:
    body = zendesk_body()
    signed = zendesk_headers(body, invocation=first)
    answers = [post(intake + "/webhooks/zendesk", body, signed)]
    for invocation in ("inv-2", None):
        headers = {k: v for k, v in signed.items() if k != "X-Zendesk-Webhook-Invocation-Id"}
        if invocation is not None:
            headers["X-Zendesk-Webhook-Invocation-Id"] = invocation
        answers.append(post(intake + "/webhooks/zendesk", body, headers))
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert len(queued(redis_client)) == 1


# --------------------------------------------------------------------------- solved, reopened


def solved_tickets(client: redis.Redis) -> set[str]:
    return {member.decode() for member in client.zrange(keys.SOLVED_TICKETS_KEY, 0, -1)}


def zendesk_status_change(intake: str, ticket: str, status: str, at: datetime) -> dict[str, Any]:
    body = zendesk_body(ticket=ticket, session="", status=status)
    headers = zendesk_headers(body, at=at, invocation=f"inv-{uuid.uuid4()}")
    answer = post(intake + "/webhooks/zendesk", body, headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_captured_zendesk_solved_sent_again_does_not_undo_a_later_reopening(
    intake: str, redis_client: redis.Redis
) -> None:
    now = datetime.now(timezone.utc)
    solved_at, reopened_at = now - timedelta(seconds=120), now - timedelta(seconds=60)
    assert "solved" in zendesk_status_change(intake, "321", "solved", solved_at)["ticket"]
    assert solved_tickets(redis_client) == {"zendesk:321"}
    zendesk_status_change(intake, "321", "open", reopened_at)
    assert solved_tickets(redis_client) == set()
    # The captured "solved" again (within the timestamp window, under a new invocation id).
    replayed = zendesk_status_change(intake, "321", "solved", solved_at)
    assert "not changed" in replayed["ticket"]
    assert solved_tickets(redis_client) == set()


def test_a_captured_zendesk_reopening_sent_again_does_not_cancel_a_later_solving(
    intake: str, redis_client: redis.Redis
) -> None:
    now = datetime.now(timezone.utc)
    reopened_at, solved_at = now - timedelta(seconds=120), now - timedelta(seconds=60)
    zendesk_status_change(intake, "322", "open", reopened_at)
    zendesk_status_change(intake, "322", "closed", solved_at)
    assert solved_tickets(redis_client) == {"zendesk:322"}
    assert "not changed" in zendesk_status_change(intake, "322", "open", reopened_at)["ticket"]
    assert solved_tickets(redis_client) == {"zendesk:322"}
    # A genuine later reopening still applies.
    zendesk_status_change(intake, "322", "pending", now)
    assert solved_tickets(redis_client) == set()


def test_jira_resolutions_apply_in_the_order_jira_signed_them(
    intake: str, redis_client: redis.Redis
) -> None:
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)

    def send(solved: bool, at_ms: int) -> str:
        body = jira_resolution("BUG-77", solved, at_ms)
        answer = post(intake + "/webhooks/jira", body, jira_headers(body, identifier="any"))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["ticket"])

    assert "solved" in send(True, now_ms - 5000)
    assert "open" in send(False, now_ms - 1000)
    assert solved_tickets(redis_client) == set()
    # A resolution set earlier, arriving late (or captured and sent again): nothing changes.
    assert "not changed" in send(True, now_ms - 3000)
    assert solved_tickets(redis_client) == set()
    # Older than intake.deduplicate_hours: its order cannot be known, so it is not applied.
    assert "older than" in send(True, now_ms - 25 * 3600 * 1000)
    assert solved_tickets(redis_client) == set()
    assert "solved" in send(True, now_ms)
    assert solved_tickets(redis_client) == {"jira:BUG-77"}


# --------------------------------------------------------------------------- formats as they come


def test_posthog_js_replay_url_with_the_project_token_and_its_moment(
    intake: str, redis_client: redis.Redis
) -> None:
    """posthog.get_session_replay_url({withTimestamp: true}) names the project by its token."""
    url = POSTHOG_HOST + "/project/phc_AbC123xyz/replay/0192c0de-cccc?t=12"
    assert post(intake + "/v1/bug-reports", {"session_id": url, "zendesk_ticket": 3}, bearer()).ok
    given = POSTHOG_HOST + "/project/phc_AbC123xyz/replay/0192c0de-dddd?t=12"
    event = {"session_id": given, "zendesk_ticket": 3, "replay_seconds": 40}
    assert post(intake + "/v1/bug-reports", event, bearer()).ok
    first, second = queued(redis_client)
    assert (first["session_id"], first["replay_seconds"]) == ("0192c0de-cccc", 12)
    assert (second["session_id"], second["replay_seconds"]) == ("0192c0de-dddd", 40)
    body = json.dumps({"session_id": url, "zendesk_ticket": "4"}).encode()
    answer = post(intake + "/webhooks/posthog", body, posthog_headers(body, "msg-phc-1"))
    assert answer.status_code == 202, answer.text
    assert queued(redis_client)[-1]["replay_seconds"] == 12


@pytest.mark.parametrize(
    ("status", "category", "solved"),
    [
        ("Open", None, None),  # a creation: nothing to record
        ("Offen", None, None),  # translated: unknown, the report still goes through
        ("Waiting for parts", "open", False),  # a custom status: its category says
        ("Gelöst", "solved", True),
        ("On-hold", None, False),
        ("on hold", None, False),
        ("SOLVED", None, True),
    ],
)
def test_a_zendesk_status_is_never_a_reason_to_refuse_a_delivery(
    intake: str, redis_client: redis.Redis, status: str, category: str | None, solved: bool | None
) -> None:
    fields = {"ticket_id": "321", "session_id": "0192-st", "status": status}
    if category is not None:
        fields["status_category"] = category
    body = json.dumps(fields).encode()
    answer = post(intake + "/webhooks/zendesk", body, zendesk_headers(body))
    assert answer.status_code in (200, 202), answer.text
    recorded = redis_client.zscore(keys.SOLVED_TICKETS_KEY, "zendesk:321")
    if solved:
        assert answer.status_code == 200 and recorded is not None and queued(redis_client) == []
    else:
        assert answer.status_code == 202 and recorded is None
        assert [e["zendesk_ticket"] for e in queued(redis_client)] == [321]


def test_a_zendesk_reopening_by_its_category_takes_the_ticket_off_the_solved(
    intake: str, redis_client: redis.Redis
) -> None:
    solved = json.dumps({"ticket_id": "322", "session_id": "", "status": "Solved"}).encode()
    assert post(intake + "/webhooks/zendesk", solved, zendesk_headers(solved)).ok
    assert redis_client.zscore(keys.SOLVED_TICKETS_KEY, "zendesk:322") is not None
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    reopened = json.dumps(
        {"ticket_id": "322", "session_id": "", "status": "In Arbeit", "status_category": "open"}
    ).encode()
    assert post(intake + "/webhooks/zendesk", reopened, zendesk_headers(reopened, at=later)).ok
    assert redis_client.zscore(keys.SOLVED_TICKETS_KEY, "zendesk:322") is None


def test_jira_automation_issue_data_in_automation_format_is_a_creation(
    intake: str, redis_client: redis.Redis
) -> None:
    """Automation's "Issue data (Automation format)": the bare issue, not {"issue": ...}."""
    bare = {
        "self": "https://acme.atlassian.net/rest/api/2/issue/10002",
        "id": "10002",
        "key": "BUG-12",
        "fields": {"summary": "x", JIRA_FIELD: "0192-auto"},
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {JIRA_SECRET}"}
    answer = post(intake + "/webhooks/jira", bare, headers)
    assert answer.status_code == 202, answer.text
    (event,) = queued(redis_client)
    assert (event["jira_issue"], event["session_id"]) == ("BUG-12", "0192-auto")


def test_each_401_logs_its_cause_on_the_server_and_answers_the_same(
    server: IntakeServer, intake: str, redis_client: redis.Redis
) -> None:
    body = zendesk_body(ticket="401")
    stale = datetime.now(timezone.utc) - timedelta(hours=1)
    cases = [
        ("/webhooks/zendesk", body, {"Content-Type": "application/json"}, "no X-Zendesk-"),
        ("/webhooks/zendesk", body, zendesk_headers(body, at=stale), "a stale timestamp"),
        (
            "/webhooks/zendesk",
            body,
            zendesk_headers(body, secret="c29tZW9uZSBlbHNlcyBzZWNyZXQ="),
            "a signature that does not match",
        ),
        ("/v1/bug-reports", {}, {"Content-Type": "application/json"}, "no Authorization: Bearer"),
        ("/v1/bug-reports", {}, bearer("not-a-configured-token-at-all"), "not a configured one"),
        ("/webhooks/jira", b"{}", jira_headers(b"{}", secret="x" * 20), "does not match"),
    ]
    answers = set()
    for path, sent, headers, cause in cases:
        answer = post(intake + path, sent, headers)
        assert answer.status_code == 401
        answers.add(answer.text)
        wait_for(lambda c=cause: c in server.log_text(), 10, f"the log to say {cause!r}")
    assert len(answers) == 1 and "stale" not in answers.pop()
