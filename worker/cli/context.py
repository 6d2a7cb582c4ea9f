"""What every command shares: the configuration, the Redis client, the stores, the way to fail."""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NoReturn

import click

from worker.attach.events import JIRA_ISSUE_PATTERN, SESSION_ID_PATTERN
from worker.attach.tickets import Ticket
from worker.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    import redis

    from worker.jobs.failed import FailedJobs
    from worker.jobs.producer import BugReportQueue

EXIT_USAGE = 2


def die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Say what is wrong on stderr and exit (status 2 for bad input or configuration)."""
    from worker.logs import log_format

    if log_format() == "json":
        logging.getLogger("worker.cli").error("replay-attach: %s", message)
    else:
        click.echo(f"replay-attach: {message}", err=True)
    sys.exit(code)


def config_of(ctx: click.Context, *required: str) -> Config:
    """The configuration, with each of the dotted ``required`` keys set (else exit 2)."""
    config: Config | None = ctx.obj.get("config")
    try:
        if config is None:
            config = ctx.obj["config"] = load_config()
        config.require(*required)
    except ConfigError as exc:
        die(str(exc))
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


def selected_target(zendesk_ticket: int | None, jira_issue: str | None) -> str | None:
    """The ticket given by --zendesk-ticket or --jira-issue, as the ledger names it."""
    if zendesk_ticket is not None and jira_issue is not None:
        die("invalid selection: give at most one of --zendesk-ticket and --jira-issue")
    if zendesk_ticket is not None:
        if zendesk_ticket <= 0:
            die("invalid selection: zendesk_ticket: must be a positive integer")
        return str(Ticket.zendesk(zendesk_ticket))
    if jira_issue is not None:
        if not re.match(JIRA_ISSUE_PATTERN, jira_issue.upper()):
            die("invalid selection: jira_issue: must be a Jira issue key such as BUG-42")
        return str(Ticket.jira(jira_issue))
    return None


def checked_session(session_id: str | None) -> str | None:
    """--session-id, refused (exit 2) unless it is a valid session id."""
    if session_id is not None and not re.match(SESSION_ID_PATTERN, session_id):
        die("invalid selection: session_id: must be 1-200 letters, digits, '-' or '_'")
    return session_id
