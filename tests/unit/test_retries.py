"""integrations.retries: which failures are repeated within a job, how often, after what wait."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from integrations.errors import PermanentFailure, RetryLater
from integrations.retries import (
    IN_PROCESS_ATTEMPTS,
    IN_PROCESS_MAX_WAIT_SECONDS,
    IN_PROCESS_MIN_WAIT_SECONDS,
    call_with_retries,
)


class Flaky:
    """Fails with the given errors in turn, then answers "ok"; counts its calls."""

    def __init__(self, *errors: Exception, pause: float = 0.0) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.pause = pause

    def __call__(self) -> str:
        self.calls += 1
        time.sleep(self.pause)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _busy(*, maybe_applied: bool = False, never_sent: bool = False) -> RetryLater:
    return RetryLater(
        "Zendesk",
        "busy (503)",
        status=503,
        retry_after=0,
        maybe_applied=maybe_applied,
        never_sent=never_sent,
    )


def test_a_repeatable_call_is_tried_again_in_process_up_to_the_limit() -> None:
    call = Flaky(_busy(), _busy())
    assert call_with_retries(call, repeatable=True) == "ok"
    assert call.calls == 3

    call = Flaky(*[_busy() for _ in range(IN_PROCESS_ATTEMPTS)])
    with pytest.raises(RetryLater):
        call_with_retries(call, repeatable=True)
    assert call.calls == IN_PROCESS_ATTEMPTS


def test_the_first_failure_decides_the_wait_before_the_second_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first attempt runs outside tenacity; its failure still drives tenacity's wait."""
    throttled = RetryLater("PostHog", "throttled (429)", status=429, retry_after=0.3)
    call = Flaky(throttled)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="integrations.retries"):
        assert call_with_retries(call, repeatable=True) == "ok"
    assert call.calls == 2
    assert time.monotonic() - started >= 0.3
    assert "retrying in process after: throttled (429)" in caplog.text


def test_a_server_asking_for_no_wait_still_gets_the_shortest_in_process_wait() -> None:
    call = Flaky(_busy(), _busy())  # Retry-After: 0
    started = time.monotonic()
    assert call_with_retries(call, repeatable=True) == "ok"
    assert time.monotonic() - started >= 2 * IN_PROCESS_MIN_WAIT_SECONDS


def test_an_unexpected_error_on_the_first_attempt_is_raised_unchanged() -> None:
    call = Flaky(KeyError("id"), _busy())
    with pytest.raises(KeyError):
        call_with_retries(call, repeatable=True)
    assert call.calls == 1


def test_a_write_is_repeated_in_process_only_when_it_never_left() -> None:
    call = Flaky(_busy(maybe_applied=True))
    with pytest.raises(RetryLater):
        call_with_retries(call, repeatable=False)
    assert call.calls == 1

    call = Flaky(_busy(never_sent=True), _busy(never_sent=True))
    assert call_with_retries(call, repeatable=False) == "ok"
    assert call.calls == 3


def test_long_waits_and_permanent_failures_are_not_retried_in_process() -> None:
    long_wait = RetryLater("PostHog", "throttled", retry_after=IN_PROCESS_MAX_WAIT_SECONDS + 1)
    for error in (long_wait, PermanentFailure("Jira", "issue not found (404)", status=404)):
        call = Flaky(error)
        with pytest.raises(type(error)):
            call_with_retries(call, repeatable=True)
        assert call.calls == 1


def test_threads_retrying_at_once_keep_their_own_attempt_counts() -> None:
    """The retry controllers are shared by the worker threads; each call counts its own."""
    calls = [Flaky(_busy(), _busy(), pause=0.01) for _ in range(8)]
    failing = [Flaky(*[_busy() for _ in range(5)], pause=0.01) for _ in range(4)]
    results: list[str] = []
    errors: list[Exception] = []

    def run(call: Flaky) -> None:
        try:
            results.append(call_with_retries(call, repeatable=True))
        except RetryLater as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls + failing]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["ok"] * len(calls) and len(errors) == len(failing)
    assert [c.calls for c in calls + failing] == [3] * (len(calls) + len(failing))
