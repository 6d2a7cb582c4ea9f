"""When a job that did not finish is tried again, and when it is given up.

A failure is retried at exactly one layer:

1. In process (``integrations.retries.call_with_retries``): a request that cannot
   post twice (a read, the idempotent PostHog PATCH, a tag, a remote-link
   upsert, or one that never left the machine) is repeated at most 3 times
   within a job, with waits of at most 2 s. The libraries' own hidden retries
   are switched off.
2. On the queue (this module, applied by ``worker.jobs.outcomes``): a
   ``RetryLater`` (5xx, 408, 409, 429, timeouts, resets, a request budget used
   up, another worker busy with the same ticket, Redis unavailable) goes back to
   the queue through ``worker.jobs.scheduler`` after the server's own wait
   (Retry-After, PostHog's "Expected available in N seconds"), kept between
   ``retry.min_backoff_seconds`` and ``retry.max_retry_after_seconds``, or else
   exponential backoff with full jitter between ``retry.min_backoff_seconds``
   and ``retry.max_backoff_seconds``. A job is given up, as a failed job with
   its last reason, after ``retry.max_attempts`` attempts or once its next
   attempt would fall beyond ``retry.horizon_hours`` after its first; one that
   raised an unexpected error (a bug, not a vendor failure) after
   ``MAX_ATTEMPTS_ON_UNEXPECTED_ERROR`` attempts. A job waiting for its
   recording to appear in PostHog is retried the same way, each wait cut short
   so that its last look comes at the end of ``posthog.recording_wait_minutes``.
3. Never: a ``PermanentFailure`` (400, 401, 403, 404, 422, an invalid event, a
   disabled system) becomes a failed job at once.

dramatiq's own ``Retries`` middleware only catches what escapes layer 2 (Redis
unreachable for longer than ``REDIS_PATIENCE_SECONDS`` while recording an
outcome): a few redeliveries, ``FALLBACK_*``, rather than a silent drop.
"""

from __future__ import annotations

import random

from worker.config import RetryConfig

#: Unexpected errors (a bug, not a vendor failure) get this many attempts.
MAX_ATTEMPTS_ON_UNEXPECTED_ERROR = 5

#: How long recording a job's outcome waits for an unreachable Redis. Shorter
#: than the broker's job time limit; past it the message is left to dramatiq's
#: Retries middleware, which needs Redis too.
REDIS_PATIENCE_SECONDS = 300

#: dramatiq's Retries middleware, for what escapes the actor.
FALLBACK_MAX_RETRIES = 5
FALLBACK_MIN_BACKOFF_MS = 5_000
FALLBACK_MAX_BACKOFF_MS = 60_000


def retry_delay_seconds(attempt: int, retry_after: float | None, policy: RetryConfig) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    A server's own wait is honoured, but never below the minimum backoff: a
    proxy answering ``Retry-After: 0`` must not make a job retry at once.
    """
    if retry_after is not None:
        wait = min(max(retry_after, policy.min_backoff_seconds), policy.max_retry_after_seconds)
        # A little jitter so that a fleet told "retry in 10 s" does not return at once.
        return wait + random.uniform(0, 0.25)
    ceiling = min(policy.max_backoff_seconds, policy.min_backoff_seconds * 2 ** (attempt - 1))
    return random.uniform(policy.min_backoff_seconds, max(policy.min_backoff_seconds, ceiling))


def no_later_than(delay: float, seconds_left: float, policy: RetryConfig) -> float:
    """``delay``, shortened so that the retry comes by a moment the job asked for (a missing
    recording's last look), but never below the minimum backoff."""
    return min(delay, max(seconds_left, policy.min_backoff_seconds))


def within_horizon(first_attempt_at: float, retry_at: float, policy: RetryConfig) -> bool:
    """Whether an attempt at ``retry_at`` is still within the horizon of the job's first."""
    return retry_at - first_attempt_at <= policy.horizon_hours * 3600


def why_give_up(
    attempt: int, first_attempt_at: float, retry_at: float, policy: RetryConfig
) -> str | None:
    """Why the job ends after failed attempt ``attempt`` rather than retry at ``retry_at``."""
    if attempt >= policy.max_attempts:
        return f"gave up after {attempt} attempts (retry.max_attempts)"
    if not within_horizon(first_attempt_at, retry_at, policy):
        return f"gave up after {attempt} attempts over {policy.horizon_hours:g} h"
    return None
