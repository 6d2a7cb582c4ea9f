"""How many events each intake token may enqueue per minute, shared by every server process.

A sliding window over two one-minute counters in Redis (the previous minute's
count weighted by how much of it the window still covers, plus this minute's):
the rate-limiter pattern of Redis's own ``INCR`` documentation, made smooth at
the minute's turn and taken in one script so that processes cannot race.
dramatiq's ``WindowRateLimiter`` (which the worker uses for vendor budgets)
is synchronous and takes one permit per call; here one request may carry
1,000 events, and the intake's Redis client is asynchronous.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis

from worker import keys
from worker.lua import lua_script

#: Seconds a minute's counter is kept: it is read again as the previous minute.
_COUNTER_SECONDS = 120

_TAKE_SCRIPT = lua_script(__name__, "rate_take.lua")


class TokenRates:
    """The per-token event budget (``intake.events_per_minute_per_token``)."""

    def __init__(self, client: aioredis.Redis, per_minute: int) -> None:
        self._script = client.register_script(_TAKE_SCRIPT)
        self._per_minute = per_minute

    async def take(self, token: str, events: int, resend_keys: tuple[str, ...] = ()) -> int | None:
        """Count ``events`` for ``token`` (a ``token_id``); the seconds to wait when over budget.

        A delivery one of whose ``resend_keys`` (``deliveries.dedupe_key``) exists was written
        before: it is answered as the first was, so it costs nothing and is never refused.
        """
        now = time.time()
        minute = int(now // 60)
        wait_ms = await self._script(
            keys=[
                keys.INTAKE_RATE_KEY.format(token=token, minute=minute),
                keys.INTAKE_RATE_KEY.format(token=token, minute=minute - 1),
                *resend_keys,
            ],
            args=[events, self._per_minute, repr((now % 60) / 60), _COUNTER_SECONDS],
        )
        if not wait_ms:
            return None
        return max(1, math.ceil(int(wait_ms) / 1000))
