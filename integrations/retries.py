"""Retry policy, layer 1 (in process): a short repeat of a request that cannot post twice.

``call_with_retries`` repeats a request at most ``IN_PROCESS_ATTEMPTS`` times
with short jittered waits, and only when repeating cannot post twice: reads,
the idempotent PostHog PATCH, tag additions, remote-link upserts, and any
request that never left this machine (connection refused or connect timeout).
Anything needing a longer wait is raised as ``RetryLater`` and goes back to the
queue (layer 2, ``worker.jobs.retry_policy``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from integrations.errors import RetryLater

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Attempts of one request inside one job, counting the first.
IN_PROCESS_ATTEMPTS = 3
#: The longest in-process wait; a server asking for more goes back to the queue.
IN_PROCESS_MAX_WAIT_SECONDS = 2.0
#: The shortest in-process wait after a server named its own.
IN_PROCESS_MIN_WAIT_SECONDS = 0.2


def _retryable_in_process(repeatable: bool) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if not isinstance(exc, RetryLater):
            return False
        if exc.retry_after is not None and exc.retry_after > IN_PROCESS_MAX_WAIT_SECONDS:
            return False
        return repeatable or exc.never_sent

    return check


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryLater) and exc.retry_after is not None:
        # "Retry-After: 0" from a proxy is no reason to hammer the server.
        return max(exc.retry_after, IN_PROCESS_MIN_WAIT_SECONDS)
    return float(wait_random_exponential(multiplier=0.2, max=IN_PROCESS_MAX_WAIT_SECONDS)(state))


def _retrying(repeatable: bool) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(IN_PROCESS_ATTEMPTS),
        wait=_wait,
        retry=retry_if_exception(_retryable_in_process(repeatable)),
        reraise=True,
        before_sleep=lambda state: log.info(
            "retrying in process after: %s", state.outcome.exception() if state.outcome else "?"
        ),
    )


# Built once, not per call: tenacity keeps each call's state per thread, so the
# worker threads share these.
# Not reentrant: a call passed in must not itself use call_with_retries.
_RETRYING = {repeatable: _retrying(repeatable) for repeatable in (True, False)}


def call_with_retries(call: Callable[[], T], *, repeatable: bool) -> T:
    """Run ``call``; repeat it briefly only where that cannot duplicate a write.

    The first attempt runs outside tenacity: its bookkeeping for one call (state,
    futures, an action list) outweighs the call's own work, and almost every
    call succeeds the first time. A failure is handed to tenacity as the outcome
    of its first attempt, without calling again, so tenacity alone decides
    whether, when and how often to try again.
    """
    try:
        return call()
    except RetryLater as exc:
        if not _retryable_in_process(repeatable)(exc):
            raise
        first_failure: RetryLater | None = exc

    def attempt() -> T:
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return call()

    return _RETRYING[repeatable](attempt)
