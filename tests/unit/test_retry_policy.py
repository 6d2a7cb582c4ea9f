"""How long a job waits before its next attempt, and when it is given up."""

from __future__ import annotations

import pytest

from worker.config import RetryConfig
from worker.jobs.retry_policy import retry_delay_seconds, why_give_up, within_horizon

POLICY = RetryConfig(
    horizon_hours=1,
    min_backoff_seconds=10,
    max_backoff_seconds=100,
    max_retry_after_seconds=60,
    max_attempts=5,
)


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_a_servers_wait_is_honoured_with_a_little_jitter(attempt: int) -> None:
    for _ in range(50):
        assert 17.0 <= retry_delay_seconds(attempt, 17.0, POLICY) <= 17.25


@pytest.mark.parametrize("retry_after", [0.0, 0.1, 9.9])
def test_a_servers_wait_below_the_minimum_backoff_is_raised_to_it(retry_after: float) -> None:
    """A proxy answering "Retry-After: 0" must not make the job come back at once."""
    for _ in range(50):
        assert 10 <= retry_delay_seconds(1, retry_after, POLICY) <= 10.25


def test_a_servers_wait_is_capped() -> None:
    for _ in range(50):
        assert 60 <= retry_delay_seconds(1, 86_400, POLICY) <= 60.25


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100)])
def test_backoff_grows_exponentially_with_full_jitter_up_to_its_maximum(
    attempt: int, ceiling: float
) -> None:
    delays = [retry_delay_seconds(attempt, None, POLICY) for _ in range(300)]
    assert min(delays) >= 10 and max(delays) <= ceiling
    if ceiling > 10:  # full jitter: spread over the range, not stuck at either end
        assert max(delays) - min(delays) > (ceiling - 10) / 2


def test_the_horizon_counts_from_the_first_attempt() -> None:
    assert within_horizon(1000.0, 1000.0 + 3600, POLICY)
    assert not within_horizon(1000.0, 1000.0 + 3600.5, POLICY)


def test_a_job_ends_after_its_last_attempt_or_past_the_horizon() -> None:
    assert why_give_up(4, 1000.0, 1010.0, POLICY) is None
    assert why_give_up(5, 1000.0, 1010.0, POLICY) == "gave up after 5 attempts (retry.max_attempts)"
    assert why_give_up(2, 1000.0, 1000.0 + 3601, POLICY) == "gave up after 2 attempts over 1 h"
