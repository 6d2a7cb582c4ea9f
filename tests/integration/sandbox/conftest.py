"""Fixtures of the sandbox tests: each double started on a free port, with a little data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.doubles import JiraDouble, PostHogDouble, ZendeskDouble
from tests.integration.sandbox.helpers import EchoDouble


@pytest.fixture
def echo() -> Iterator[EchoDouble]:
    with EchoDouble() as double:
        yield double


@pytest.fixture
def posthog() -> Iterator[PostHogDouble]:
    keys = {
        "phx_sandbox_key": {
            "sharing_configuration:read",
            "sharing_configuration:write",
            "session_recording:read",
            "project:read",
        },
        "phx_read_only": {"sharing_configuration:read"},
    }
    with PostHogDouble(api_keys=keys) as double:
        yield double


@pytest.fixture
def zendesk() -> Iterator[ZendeskDouble]:
    with ZendeskDouble() as double:
        double.add_ticket(101, subject="Checkout button does nothing", tags=["checkout", "web"])
        double.add_ticket(106, subject="Old invoice question", status="closed")
        yield double


@pytest.fixture
def jira() -> Iterator[JiraDouble]:
    with JiraDouble() as double:
        double.add_issue("BUG-1", summary="Checkout broken")
        yield double


@pytest.fixture
def jira_dc() -> Iterator[JiraDouble]:
    with JiraDouble(deployment="datacenter") as double:
        double.add_issue("BUG-1", summary="Checkout broken")
        yield double
