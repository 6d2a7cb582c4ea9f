"""Scheduled retries: promoted when due, by the process that scheduled them without
waiting for its next look, and by any other process within its longest sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import config_data
from worker.app import App
from worker.jobs.messages import Job, new_job, queue_keys
from worker.jobs.scheduler import (
    _PROMOTE,
    RetryScheduler,
    promote_due,
    schedule_retry,
    scheduled_count,
)


def _retry(app: App, session: str) -> Job:
    return new_job(app.config.broker.queue, {"session_id": session, "zendesk_ticket": 101})


def _scheduler(app: App) -> RetryScheduler:
    return next(m for m in app.broker.middleware if isinstance(m, RetryScheduler))


@contextmanager
def _running(scheduler: RetryScheduler, app: App) -> Iterator[None]:
    scheduler.after_worker_boot(app.broker, None)  # type: ignore[arg-type]
    try:
        yield
    finally:
        scheduler.before_worker_shutdown(app.broker, None)  # type: ignore[arg-type]


def _wait_until_queued(app: App, count: int, timeout: float) -> float:
    """Seconds until ``count`` messages are on the bug-report queue; fails after ``timeout``."""
    waiting = queue_keys(app.config.broker.queue)[0]
    started = time.monotonic()
    while app.redis.llen(waiting) < count:
        assert time.monotonic() - started < timeout, (
            f"{app.redis.llen(waiting)} of {count} retries promoted after {timeout} s; "
            f"{scheduled_count(app.redis)} still scheduled"
        )
        time.sleep(0.02)
    return time.monotonic() - started


def test_promote_due_moves_only_due_retries_and_reports_the_earliest_left(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    app = make_app(config_data(sandbox))
    script = app.redis.register_script(_PROMOTE)
    now = time.time()
    schedule_retry(app.broker, _retry(app, "soon"), 100)
    schedule_retry(app.broker, _retry(app, "later"), 200)

    assert promote_due(app.broker, app.config.broker.queue, script, now=now) == (
        0,
        pytest.approx(abs=1.0, expected=now + 100),
    )
    moved, earliest = promote_due(app.broker, app.config.broker.queue, script, now=now + 150)
    assert (moved, earliest) == (1, pytest.approx(abs=1.0, expected=now + 200))
    assert promote_due(app.broker, app.config.broker.queue, script, now=now + 250) == (1, None)
    assert scheduled_count(app.redis) == 0
    _wait_until_queued(app, 2, timeout=1)


def test_a_retry_scheduled_in_the_process_wakes_its_sleeping_scheduler(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """With nothing scheduled the thread sleeps its longest sleep (here a minute);
    a retry this process schedules is promoted when due, not at that next look."""
    app = make_app(config_data(sandbox))
    scheduler = _scheduler(app)
    scheduler.max_sleep_seconds = 60
    with _running(scheduler, app):
        time.sleep(0.3)  # the thread has looked once and is asleep
        schedule_retry(app.broker, _retry(app, "woken"), 0.5)
        assert scheduled_count(app.redis) == 1  # not promoted before it is due
        took = _wait_until_queued(app, 1, timeout=20)
    assert took >= 0.3
    assert scheduled_count(app.redis) == 0


def test_a_retry_scheduled_by_another_process_is_promoted_within_the_longest_sleep(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """Another process's retries (say it died) are promoted at this one's next look."""
    app = make_app(config_data(sandbox))
    other = make_app(config_data(sandbox))  # its own scheduler is not running
    scheduler = _scheduler(app)
    scheduler.max_sleep_seconds = 0.5
    with _running(scheduler, app):
        time.sleep(0.2)
        schedule_retry(other.broker, _retry(other, "orphan"), 0.1)
        _wait_until_queued(app, 1, timeout=20)
    assert scheduled_count(app.redis) == 0


def test_after_a_promotion_the_scheduler_sleeps_until_the_next_retry_is_due(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """A retry due after the one the thread sleeps for does not wake it; once it has
    promoted the first, it sleeps until the second is due, not its longest sleep."""
    app = make_app(config_data(sandbox))
    scheduler = _scheduler(app)
    scheduler.max_sleep_seconds = 60
    with _running(scheduler, app):
        schedule_retry(app.broker, _retry(app, "first"), 0.6)
        time.sleep(0.2)
        schedule_retry(app.broker, _retry(app, "second"), 1.2)
        _wait_until_queued(app, 1, timeout=20)
        assert scheduled_count(app.redis) == 1
        _wait_until_queued(app, 2, timeout=20)
    assert scheduled_count(app.redis) == 0
