"""The worker's app, built in one step: Redis, broker, failed-job store, queue and actor.

Producers, the worker and the command line all build it through
``create_app``, so they agree on queue, actor and key names. (A producer that
only enqueues needs less: ``worker.jobs.producer``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dramatiq
import redis
from dramatiq.middleware import CurrentMessage

from worker.config import Config
from worker.jobs import retry_policy
from worker.jobs.broker import build_broker
from worker.jobs.dramatiq_compat import ReplayAttachBroker
from worker.jobs.failed import FailedJobs
from worker.jobs.messages import ACTOR_NAME, Job
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

    def attach_replay(*args: object, **kwargs: object) -> None:
        """The actor: hands the message being processed to the runner as a plain job."""
        message = CurrentMessage.get_current_message()
        if message is None:  # pragma: no cover - CurrentMessage is always installed
            raise RuntimeError("CurrentMessage middleware is missing")
        runner.run(Job.from_fields(message.asdict()))

    actor: dramatiq.Actor[..., None] = dramatiq.actor(  # type: ignore[call-overload]
        attach_replay,
        actor_name=ACTOR_NAME,
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


@contextmanager
def worker_threads(app: App, threads: int) -> Iterator[None]:
    """A worker of ``threads`` threads consuming ``app``'s queue inside this process, for
    the demo and tests (``replay-attach worker`` runs worker processes instead)."""
    # What each dramatiq worker process does once: starts the time-limit watch.
    app.broker.emit_after("process_boot")
    worker = dramatiq.Worker(app.broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    try:
        yield
    finally:
        worker.stop()


__all__ = ["App", "create_app", "worker_threads"]
