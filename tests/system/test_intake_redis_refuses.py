"""A Redis that answers but cannot take a delivery (out of memory, read-only during a failover)
is unavailable to the sender: 503 with Retry-After, nothing accepted, and accepted again once
Redis takes writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import requests

from tests.intake_server import IntakeServer, bearer, intake_config, zendesk_headers
from tests.redis_server import RedisServer
from tests.scenarios import QUEUE
from worker.jobs.messages import queue_keys


@pytest.mark.parametrize(
    "refuse, allow",
    [
        (["CONFIG", "SET", "maxmemory", "1"], ["CONFIG", "SET", "maxmemory", "0"]),
        (["REPLICAOF", "127.0.0.1", "9"], ["REPLICAOF", "NO", "ONE"]),
    ],
    ids=["out-of-memory", "read-only"],
)
def test_a_redis_refusing_writes_is_answered_503_and_nothing_is_accepted(
    tmp_path: Path, refuse: list[str], allow: list[str]
) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        with IntakeServer(intake_config(redis_server.url), tmp_path / "intake") as server:
            event = {"session_id": "refused-1", "zendesk_ticket": 7001}
            body = json.dumps({"ticket_id": "7002", "session_id": "refused-2"}).encode()
            client.execute_command(*refuse)
            answers = [
                requests.post(
                    server.url + "/v1/bug-reports", json=event, headers=bearer(), timeout=30
                ),
                requests.post(
                    server.url + "/webhooks/zendesk",
                    body,
                    headers=zendesk_headers(body),
                    timeout=30,
                ),
            ]
            for answer in answers:
                assert answer.status_code == 503, answer.text
                assert int(answer.headers["Retry-After"]) > 0
                assert "unavailable" in answer.json()["error"]
            client.execute_command(*allow)
            assert client.llen(queue_keys(QUEUE)[0]) == 0
            again = requests.post(
                server.url + "/v1/bug-reports", json=event, headers=bearer(), timeout=30
            )
            assert again.status_code == 202, again.text
            assert client.llen(queue_keys(QUEUE)[0]) == 1
    finally:
        client.close()
        redis_server.kill()
