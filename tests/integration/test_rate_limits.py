"""Request budgets shared through Redis: the fleet stays under a vendor's limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from integrations.errors import RetryLater
from tests.conftest import RunningWorker, config_data
from worker.app import App
from worker.jobs import rate_limits
from worker.jobs.producer import enqueue_bug_report


def test_no_budget_means_no_throttle(redis_client: redis.Redis) -> None:
    assert rate_limits.make_throttle(redis_client, "Zendesk", None) is None


def test_budget_is_shared_and_refuses_beyond_it(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits, "MAX_WAIT_SECONDS", 0.3)
    first = rate_limits.make_throttle(redis_client, "Zendesk", 5)
    second = rate_limits.make_throttle(redis_client, "Zendesk", 5)  # another worker
    assert first is not None and second is not None
    for take in (first, second, first, second, first):
        take()
    started = time.monotonic()
    with pytest.raises(RetryLater) as caught:
        second()
    assert time.monotonic() - started >= 0.3
    assert caught.value.never_sent and caught.value.retry_after is not None
    assert caught.value.reason == "the Zendesk request budget (5/minute) is used up"
    # Other systems have budgets of their own.
    other = rate_limits.make_throttle(redis_client, "Jira", 5)
    assert other is not None
    other()


def test_worker_keeps_under_the_vendor_limit_instead_of_collecting_429s(
    sandbox: Any,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Shorter waits for a permit: refused requests come back more often, and the worker stops
    # without sitting out each one's in-process tries.
    monkeypatch.setattr(rate_limits, "MAX_WAIT_SECONDS", 0.3)
    sandbox.zendesk.rate_limit_per_minute = 6
    app = make_app(config_data(sandbox, rate_limits__zendesk_per_minute=6))
    for ticket in (101, 102, 103, 104):
        enqueue_bug_report(session_id=f"budget-{ticket}", zendesk_ticket=ticket, queue=app.queue)
    with run_worker(app):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(sandbox.zendesk.calls()) < 6:
            time.sleep(0.1)
        time.sleep(3)  # the fourth job now meets the spent budget
    # Eight calls were wanted; the budget let six through, all answered 200.
    assert [r.status for r in sandbox.zendesk.calls()] == [200] * 6
    assert sandbox.zendesk.throttled_count == 0
    # The rest waits for the budget; nothing failed.
    assert app.failed.all() == []
