"""The dramatiq broker with replay-attach's middleware."""

from __future__ import annotations

import redis
from dramatiq.middleware import CurrentMessage, Retries, ShutdownNotifications, TimeLimit

from worker.config import Config
from worker.jobs import retry_policy
from worker.jobs.dramatiq_compat import ReplayAttachBroker
from worker.jobs.failed import FailedJobs, RecordDeadLetters
from worker.jobs.link_sweep import LinkSweep
from worker.jobs.scheduler import RetryScheduler


def build_broker(config: Config, client: redis.Redis, failed: FailedJobs) -> ReplayAttachBroker:
    middleware = [
        RetryScheduler(config.broker.queue),
        LinkSweep(config, client),
        TimeLimit(time_limit=int(config.worker.job_time_limit_seconds * 1000)),
        ShutdownNotifications(),
        CurrentMessage(),
        # The actor schedules its own retries and records its own failures;
        # this catches only what escapes it (see ``retry_policy``).
        Retries(
            max_retries=retry_policy.FALLBACK_MAX_RETRIES,
            min_backoff=retry_policy.FALLBACK_MIN_BACKOFF_MS,
            max_backoff=retry_policy.FALLBACK_MAX_BACKOFF_MS,
        ),
        # Whatever dramatiq dead-letters (its retries spent, an unknown actor) is a failed job.
        RecordDeadLetters(failed),
    ]
    return ReplayAttachBroker(
        client=client,
        middleware=middleware,
        on_undecodable=failed.record_undecodable,
        idle_poll_ms={config.broker.queue: config.worker.idle_poll_ms},
        heartbeat_timeout=config.broker.heartbeat_timeout_seconds * 1000,
        maintenance_chance=config.broker.maintenance_chance_per_million,
    )
