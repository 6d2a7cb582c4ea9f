"""The step plan of a job, made from the event and the configuration alone (no request is sent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from integrations.errors import NotConfigured
from worker.attach.events import parse_event
from worker.attach.services import build_services
from worker.attach.steps import plan_steps
from worker.config import Config

BASE: dict[str, Any] = {
    "posthog": {"host": "https://us.posthog.com", "project_id": 1, "personal_api_key": "k"},
    "zendesk": {"url": "https://acme.zendesk.com", "email": "a@acme.test", "api_token": "t"},
    "jira": {"url": "https://acme.atlassian.net", "email": "a@acme.test", "api_token": "t"},
}


@pytest.fixture()
def plan(make_config: Callable[[dict[str, Any]], Config]) -> Callable[..., list[tuple[str, bool]]]:
    def plan_for(event: dict[str, Any], **sections: dict[str, Any]) -> list[tuple[str, bool]]:
        data = {**BASE, **{name: {**BASE.get(name, {}), **v} for name, v in sections.items()}}
        # The client is never used: planning sends nothing to Redis.
        services = build_services(make_config(data), redis.Redis(port=1))
        steps = plan_steps(parse_event({"session_id": "s-1", **event}), services)
        return [(step.name, step.repeatable) for step in steps]

    return plan_for


def test_a_zendesk_ticket_gets_a_note_then_a_tag(plan: Callable[..., list[Any]]) -> None:
    assert plan({"zendesk_ticket": 7}) == [("note", False), ("tag", True)]
    assert plan({"zendesk_ticket": 7}, zendesk={"tag": None}) == [("note", False)]


def test_a_jira_issue_gets_a_remote_link_and_or_a_comment(plan: Callable[..., list[Any]]) -> None:
    assert plan({"jira_issue": "BUG-1"}) == [("remote_link", True), ("comment", False)]
    assert plan({"jira_issue": "BUG-1"}, jira={"comment": False}) == [("remote_link", True)]
    assert plan({"jira_issue": "BUG-1"}, jira={"remote_link": False}) == [("comment", False)]


def test_a_system_without_credentials_is_named_before_anything_is_planned(
    make_config: Callable[[dict[str, Any]], Config],
) -> None:
    services = build_services(make_config({"posthog": BASE["posthog"]}), redis.Redis(port=1))
    with pytest.raises(NotConfigured, match="ZENDESK_URL"):
        plan_steps(parse_event({"session_id": "s", "zendesk_ticket": 7}), services)
    with pytest.raises(NotConfigured, match="JIRA_URL"):
        plan_steps(parse_event({"session_id": "s", "jira_issue": "BUG-1"}), services)
