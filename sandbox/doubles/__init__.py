"""Fake PostHog, Zendesk and Jira servers (real HTTP on 127.0.0.1) for tests, bench and demo."""

from sandbox.doubles.base import Double
from sandbox.doubles.faults import DEFAULT_FAULT_KINDS, FAULT_KINDS, RATE_LIMITED
from sandbox.doubles.jira import JiraDouble
from sandbox.doubles.messages import Request, Response
from sandbox.doubles.posthog import PostHogDouble
from sandbox.doubles.recording import RecordedRequest
from sandbox.doubles.zendesk import ZendeskDouble

__all__ = [
    "DEFAULT_FAULT_KINDS",
    "FAULT_KINDS",
    "RATE_LIMITED",
    "Double",
    "JiraDouble",
    "PostHogDouble",
    "RecordedRequest",
    "Request",
    "Response",
    "ZendeskDouble",
]
