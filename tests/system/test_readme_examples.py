"""What the README and docs show a sender sending is what these tests send, rendered as the
vendor would.

The bodies are read from the documents themselves, so that a change to either fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.intake_server import (
    INTAKE_TOKENS,
    IntakeServer,
    intake_config,
    posthog_headers,
    zendesk_headers,
)
from worker import keys
from worker.jobs.messages import queue_keys

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
HELPDESKS = (ROOT / "docs" / "helpdesks.md").read_text()


def block_after(heading: str) -> str:
    """The first ```json block after ``heading`` in docs/helpdesks.md (indentation removed)."""
    start = HELPDESKS.index(heading)
    found = re.search(r"```json\n(.*?)\n\s*```", HELPDESKS[start:], re.S)
    assert found, heading
    return found.group(1).strip()


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeServer]:
    with IntakeServer(intake_config(redis_url), tmp_path_factory.mktemp("readme")) as running:
        yield running


@pytest.fixture()
def intake(server: IntakeServer, redis_client: redis.Redis) -> str:
    return server.url


def queued_events(client: redis.Redis) -> list[dict[str, object]]:
    queue_key, messages_key = queue_keys(keys.QUEUE_NAME)
    return [
        json.loads(client.hget(messages_key, redis_id) or b"{}")["args"][0]
        for redis_id in client.lrange(queue_key, 0, -1)
    ]


def test_the_zendesk_trigger_body_as_zendesk_renders_it(
    intake: str, redis_client: redis.Redis
) -> None:
    template = block_after("Objects and rules > Triggers > Add trigger")
    rendered = (
        template.replace("{{ticket.id}}", "4321")
        .replace("{{ticket.ticket_field_<FIELD_ID>}}", "0192c0de-readme-zd")
        .replace("{{ticket.status}}", "Open")
    )
    body = rendered.encode()
    answer = requests.post(
        intake + "/webhooks/zendesk", data=body, headers=zendesk_headers(body), timeout=10
    )
    assert answer.status_code == 202, answer.text
    assert queued_events(redis_client) == [
        {"session_id": "0192c0de-readme-zd", "zendesk_ticket": 4321}
    ]
    # The solve trigger of an account with custom statuses: the category as written text.
    assert '"status_category": "solved"' in (ROOT / "docs" / "how-it-works.md").read_text()
    solved = json.loads(rendered) | {"status": "Erledigt", "status_category": "solved"}
    body = json.dumps(solved).encode()
    answer = requests.post(
        intake + "/webhooks/zendesk", data=body, headers=zendesk_headers(body), timeout=10
    )
    assert answer.status_code == 200 and answer.json()["ticket"].startswith("zendesk:4321 solved")


def test_the_posthog_destination_body_as_posthog_renders_it(
    intake: str, redis_client: redis.Redis
) -> None:
    template = block_after("## PostHog: an HTTP webhook destination")
    rendered = template.replace("{event.properties.$session_id}", "0192c0de-readme-ph").replace(
        "{event.properties.zendesk_ticket_id}", "77"
    )
    body = rendered.encode()
    answer = requests.post(
        intake + "/webhooks/posthog",
        data=body,
        headers=posthog_headers(body, "msg-readme-1"),
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    assert queued_events(redis_client) == [
        {"session_id": "0192c0de-readme-ph", "zendesk_ticket": 77}
    ]


def test_the_curl_example_of_bug_reports_over_http(intake: str, redis_client: redis.Redis) -> None:
    found = re.search(r"-d '(\{.*?\})'", README)
    assert found
    answer = requests.post(
        intake + "/v1/bug-reports",
        data=found.group(1).encode(),
        headers={
            "Authorization": f"Bearer {INTAKE_TOKENS[0]}",
            "Content-Type": "application/json",
            "Idempotency-Key": "7d1c-readme",
        },
        timeout=10,
    )
    assert answer.status_code == 202 and len(answer.json()["job_ids"]) == 1
    assert queued_events(redis_client) == [json.loads(found.group(1))]
