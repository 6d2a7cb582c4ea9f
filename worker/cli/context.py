"""What every command shares: the configuration, the Redis client, the stores, the way to fail."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NoReturn

import click

from worker.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    import redis

    from worker.jobs.failed import FailedJobs
    from worker.jobs.producer import BugReportQueue

EXIT_USAGE = 2


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Say what is wrong on stderr and exit (status 2 for bad input or configuration)."""
    click.echo(f"replay-attach: {message}", err=True)
    sys.exit(code)


def config_of(ctx: click.Context) -> Config:
    config: Config | None = ctx.obj.get("config")
    if config is None:
        try:
            config = load_config()
        except ConfigError as exc:
            die(str(exc))
        ctx.obj["config"] = config
    return config


def redis_of(ctx: click.Context) -> redis.Redis:
    from worker.jobs.redis_connection import redis_client, resolve_redis_url

    client: redis.Redis | None = ctx.obj.get("redis")
    if client is None:
        client = ctx.obj["redis"] = redis_client(resolve_redis_url(config_of(ctx)))
    return client


def queue_of(ctx: click.Context) -> BugReportQueue:
    from worker.jobs.producer import BugReportQueue

    config = config_of(ctx)
    return BugReportQueue(
        redis_of(ctx), config.broker.queue, require_distinct_id=config.posthog.require_distinct_id
    )


def failed_jobs_of(ctx: click.Context) -> FailedJobs:
    from worker.jobs.failed import FailedJobs

    return FailedJobs(redis_of(ctx), config_of(ctx).failed.retention_days)


def when(ts: float) -> str:
    """A unix time as a support engineer reads it, in UTC."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
