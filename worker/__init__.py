"""replay-attach: PostHog session replays onto Zendesk tickets and Jira issues.

The producers' API::

    from worker import enqueue_bug_report, InvalidEvent

Importing ``worker`` imports nothing heavy; each name below is loaded on first
use, and none of them loads the worker's use case or the vendor libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.attach.events import BugReport, InvalidEvent, parse_event
    from worker.jobs.producer import BugReportQueue, enqueue_bug_report, enqueue_many

__all__ = [
    "BugReport",
    "BugReportQueue",
    "InvalidEvent",
    "enqueue_bug_report",
    "enqueue_many",
    "parse_event",
]

_HOMES = {
    "BugReport": "worker.attach.events",
    "InvalidEvent": "worker.attach.events",
    "parse_event": "worker.attach.events",
    "BugReportQueue": "worker.jobs.producer",
    "enqueue_bug_report": "worker.jobs.producer",
    "enqueue_many": "worker.jobs.producer",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that the embedded Redis's keeper (``python -m
    # worker.embedded_redis.keeper``) starts without pydantic, redis and dramatiq.
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
