"""The worker's app, built in one step: Redis, broker, failed-job store, queue and actor.

Producers, the worker and the command line all build it through
``create_app``, so they agree on queue, actor and key names. (A producer that
only enqueues needs less: ``worker.jobs.producer``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq
import redis

from worker import keys
from worker.config import Config
from worker.jobs import retry_policy
from worker.jobs.broker import build_broker
from worker.jobs.dramatiq_compat import ReplayAttachBroker
from worker.jobs.failed import FailedJobs
from worker.jobs.outcomes import JobRunner
from worker.jobs.producer import BugReportQueue
from worker.jobs.redis_connection import redis_client, resolve_redis_url
from worker.jobs.thread_services import ThreadServices


@dataclass(frozen=True)
class App:
    config: Config
    broker: ReplayAttachBroker
    #: The ``attach_replay`` actor: the worker consumes its queue.
    actor: dramatiq.Actor[..., None]
    failed: FailedJobs
    queue: BugReportQueue

    @property
    def redis(self) -> redis.Redis:
        client: redis.Redis = self.broker.client
        return client


def create_app(config: Config, url: str | None = None) -> App:
    """The app on ``url``, else on the configured Redis (starting the embedded one if unset)."""
    client = redis_client(url or resolve_redis_url(config))
    failed = FailedJobs(client, config.failed.retention_days)
    broker = build_broker(config, client, failed)
    runner = JobRunner(config, broker, failed, ThreadServices(config, client))
    actor: dramatiq.Actor[..., None] = dramatiq.actor(  # type: ignore[call-overload]
        runner.run_current_message,
        actor_name=keys.ACTOR_NAME,
        queue_name=config.broker.queue,
        broker=broker,
        max_retries=retry_policy.FALLBACK_MAX_RETRIES,
    )
    return App(
        config=config,
        broker=broker,
        actor=actor,
        failed=failed,
        queue=BugReportQueue(
            client,
            config.broker.queue,
            broker.namespace,
            require_distinct_id=config.posthog.require_distinct_id,
        ),
    )


__all__ = ["App", "create_app"]
