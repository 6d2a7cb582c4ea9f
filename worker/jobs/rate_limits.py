"""Request budgets per system, shared by every worker process through Redis.

A fleet of workers that each retried on 429 would keep tripping the vendor's
limit; with ``rate_limits.<system>_per_minute`` set, every request first takes
a permit from dramatiq's ``WindowRateLimiter`` (a sliding window kept in
Redis), so the fleet as a whole stays under the budget. A request that finds
the budget used up waits briefly for a permit; past ``MAX_WAIT_SECONDS`` it is
handed back as ``RetryLater`` (never sent), and the job waits on the queue.
"""

from __future__ import annotations

import random
import time

import redis
from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from integrations.errors import RetryLater
from integrations.http import Throttle
from worker import keys
from worker.metrics import BUDGET_WAITS

#: The longest a request waits in process for a permit.
MAX_WAIT_SECONDS = 2.0
#: 61 one-second buckets: the window always covers at least the vendor's 60 s,
#: whatever the phase of the second, so the fleet never exceeds the budget in
#: any 60-second span.
WINDOW_SECONDS = 61


def make_throttle(client: redis.Redis, system: str, per_minute: int | None) -> Throttle | None:
    if not per_minute:
        return None
    limiter = WindowRateLimiter(  # type: ignore[no-untyped-call]
        RedisBackend(client=client),
        keys.BUDGET_KEY.format(system=system.lower()),
        limit=per_minute,
        window=WINDOW_SECONDS,
    )

    def take_permit() -> None:
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        waited = False
        while True:
            with limiter.acquire(raise_on_failure=False) as acquired:
                if acquired:
                    return
            if not waited:
                waited = True
                BUDGET_WAITS.labels(system.lower()).inc()
            if time.monotonic() >= deadline:
                raise RetryLater(
                    system,
                    f"the {system} request budget ({per_minute}/minute) is used up",
                    retry_after=1.0 + random.uniform(0, 1.0),
                    never_sent=True,
                )
            # Permits free up as whole seconds slide out of the window.
            time.sleep(random.uniform(0.05, 0.25))

    return take_permit
