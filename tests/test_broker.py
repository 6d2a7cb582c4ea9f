"""The broker's own settings: per-queue idle polls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dramatiq.common import dq_name

from tests.conftest import config_data
from worker.broker import App


def test_only_the_bug_report_queue_is_polled_at_the_idle_poll(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """A new event is picked up within ``worker.idle_poll_ms``; the delay queue (only
    dramatiq's backstop retries use it) is polled at dramatiq's slower worker timeout."""
    app = make_app(config_data(sandbox, worker__idle_poll_ms=70))
    queue = app.config.broker.queue
    main = app.broker.consume(queue, prefetch=1, timeout=1000)
    delayed = app.broker.consume(dq_name(queue), prefetch=1, timeout=1000)
    try:
        assert main.timeout == 70
        assert delayed.timeout == 1000
    finally:
        main.close()
        delayed.close()
