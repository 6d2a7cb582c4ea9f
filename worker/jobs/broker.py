"""The dramatiq broker with replay-attach's middleware."""

from __future__ import annotations

import redis
from dramatiq.middleware import CurrentMessage, Retries, ShutdownNotifications, TimeLimit

from worker.config import Config
from worker.jobs import retry_policy
from worker.jobs.dramatiq_compat import ReplayAttachBroker, UndecodableHandler
from worker.jobs.scheduler import RetryScheduler

#: A job is interrupted after this long (every HTTP call also has its own timeouts).
JOB_TIME_LIMIT_MS = 10 * 60 * 1000

def build_broker(
    config: Config, client: redis.Redis, on_undecodable: UndecodableHandler | None = None
) -> ReplayAttachBroker:
    middleware = [
        RetryScheduler(config.broker.queue),
        TimeLimit(time_limit=JOB_TIME_LIMIT_MS),
        ShutdownNotifications(),
        CurrentMessage(),
        # The actor schedules its own retries and records its own failures;
        # this catches only what escapes it (see ``retry_policy``).
        Retries(
            max_retries=retry_policy.FALLBACK_MAX_RETRIES,
            min_backoff=retry_policy.FALLBACK_MIN_BACKOFF_MS,
            max_backoff=retry_policy.FALLBACK_MAX_BACKOFF_MS,
        ),
    ]
    return ReplayAttachBroker(
        client=client,
        middleware=middleware,
        on_undecodable=on_undecodable,
        idle_poll_ms={config.broker.queue: config.worker.idle_poll_ms},
        heartbeat_timeout=config.broker.heartbeat_timeout_seconds * 1000,
        maintenance_chance=config.broker.maintenance_chance_per_million,
    )
