"""Retry policy, layer 2 (the queue): how long a job waits before its next attempt.

Layer 1 (short in-process retries of safe requests) lives in
``integrations.http``. Here: a server's own wait (Retry-After, PostHog's
"Expected available in N seconds") is honoured, capped at
``max_retry_after_seconds``; otherwise exponential backoff with full jitter
between ``min_backoff_seconds`` and ``max_backoff_seconds``. A job is given up,
with its last reason, once its next attempt would fall beyond ``horizon_hours``
after its first. Permanent failures are not retried at all.
"""

from __future__ import annotations

import random

from worker.config import RetryConfig

#: Unexpected errors (a bug, not a vendor failure) get this many attempts.
MAX_ATTEMPTS_ON_UNEXPECTED_ERROR = 5


def retry_delay_seconds(attempt: int, retry_after: float | None, policy: RetryConfig) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    if retry_after is not None:
        # A little jitter so that a fleet told "retry in 10 s" does not return at once.
        return min(retry_after, policy.max_retry_after_seconds) + random.uniform(0, 0.25)
    ceiling = min(policy.max_backoff_seconds, policy.min_backoff_seconds * 2 ** (attempt - 1))
    return random.uniform(policy.min_backoff_seconds, max(policy.min_backoff_seconds, ceiling))


def within_horizon(first_attempt_at: float, retry_at: float, policy: RetryConfig) -> bool:
    return retry_at - first_attempt_at <= policy.horizon_hours * 3600
