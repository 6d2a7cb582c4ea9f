"""``replay-attach status`` and ``check``: what the queue holds, and whether each system answers."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from worker.cli.context import (
    checked_session,
    config_of,
    failed_jobs_of,
    redis_of,
    selected_target,
    when,
)
from worker.config import POSTHOG_CREDENTIALS, POSTHOG_PROJECT, Config
from worker.errors import StoreUnavailable

if TYPE_CHECKING:
    from worker.attach.links import Links


def _show_attachments(ctx: click.Context, session_id: str | None, target: str | None) -> None:
    """What landed for a session and/or a ticket, and any failed job for them."""
    found = _attachments(ctx, session_id, target)
    if not found["attachments"] and not found["failed"] and not found["retries"]:
        click.echo("nothing recorded for that selection")
    for landed in found["attachments"]:
        click.echo(f"session {landed['session_id']} on {landed['target']}:")
        for key, value in landed["steps"].items():
            click.echo(f"  {key}: {value}")
        if landed["link_state"] is not None:
            click.echo(f"  link state: {landed['link_state']}")
    for job in found["failed"]:
        click.echo(
            f"failed job {job['job_id']} (session {job['session_id']} on {job['target']}): "
            f"{job['reason']}"
        )
    for retry in found["retries"]:
        click.echo(_retry_line(retry))


#: The most waiting retries ``status`` lists one by one (``--json`` lists them all).
SHOWN_RETRIES = 20


def _retry_line(retry: dict[str, Any]) -> str:
    """A job waiting for its retry: which, how many attempts, why, and when it runs again."""
    return (
        f"waiting job {retry['job_id']} (session {retry['session_id']} on {retry['target']}): "
        f"{retry['attempts']} attempt(s) failed, the last: {retry['last_error'] or '?'}; "
        f"next attempt at {when(retry['next_attempt_at'])}"
    )


def _link_state(links: Links, session_id: str, target: str, config: Config) -> str:
    """Whether the session's public link still opens the recording, and since or until when."""
    link = links.get(session_id)
    if link is None:
        return "unknown (shared before links were recorded)"
    if link.revoked:
        revoked = when(link.revoked_at) if link.revoked_at else "?"
        return f"revoked at {revoked}: {link.revoked_reason} ({link.revoked_by})"
    ends: list[tuple[float, str]] = []
    if config.privacy.link_ttl_days is not None:
        ends.append((link.shared_at + config.privacy.link_ttl_days * 86400, "time to live"))
    solved = links.ends_for_solved(target)
    if solved is not None:
        ends.append((solved, "ticket solved"))
    state = f"active, shared at {when(link.shared_at)}"
    if ends:
        end, why = min(ends)
        state += f", ends at {when(end)} ({why})"
    return state


def _shown(key: str, value: str) -> str:
    """A ledger field as a support engineer reads it."""
    if key == "link":
        return value
    if key == "recording":
        from worker.attach.recording import RecordingFacts, minutes_seconds

        facts = RecordingFacts.from_ledger(value)
        if facts is None:
            return value
        parts = (
            [f"{minutes_seconds(facts.duration_seconds)} long"] if facts.duration_seconds else []
        )
        if facts.start_time is not None:
            parts.append(f"started {when(facts.start_time.timestamp())}")
        if facts.ongoing:
            parts.append("still recording")
        return ", ".join(parts) or "no details"
    state, _, ts = value.partition(":")
    try:
        return f"{state} at {when(float(ts))}"
    except ValueError:
        return value


@click.command()
@click.option("--session-id", help="Show what landed for this session (on every ticket)...")
@click.option("--zendesk-ticket", type=int, help="...or on this Zendesk ticket...")
@click.option("--jira-issue", help="...or on this Jira issue (combine with --session-id).")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@click.pass_context
def status(
    ctx: click.Context,
    session_id: str | None,
    zendesk_ticket: int | None,
    jira_issue: str | None,
    as_json: bool,
) -> None:
    """Queue depth, jobs in flight, retries, failed jobs, links; or what landed.

    Also names the redis-server that answers (its version and executable), and
    each job waiting for a retry: its attempts, the last error, the next attempt.
    With --session-id and/or a ticket: what has landed for them (link, note,
    tag, remote link, comment, each pending or done), each link's state
    (active and when it ends, or revoked when and why), their failed jobs and
    their waiting retries.

    \b
    Examples:
      replay-attach status
      replay-attach status --zendesk-ticket 123
      replay-attach status --session-id 0192c0de-aaaa --jira-issue BUG-42
      replay-attach status --json
    """
    if session_id is not None or zendesk_ticket is not None or jira_issue is not None:
        target = selected_target(zendesk_ticket, jira_issue)
        if as_json:
            click.echo(json.dumps(_attachments(ctx, session_id, target), sort_keys=True))
        else:
            _show_attachments(ctx, session_id, target)
        return
    from worker.jobs.scheduler import waiting_retries
    from worker.jobs.status import queue_figures

    config = config_of(ctx)
    figures = queue_figures(redis_of(ctx), config.broker.queue, failed_jobs_of(ctx))
    where = "embedded" if config.broker.redis_url is None else "REDIS_URL"
    retries = [dataclasses.asdict(retry) for retry in waiting_retries(redis_of(ctx))]
    if as_json:
        data = dataclasses.asdict(figures) | {"redis": where, "retries": retries}
        click.echo(json.dumps(data, sort_keys=True))
        return
    click.echo(f"queued: {figures.queued}")
    click.echo(f"in flight: {figures.in_flight}")
    click.echo(f"scheduled retries: {figures.scheduled_retries}")
    for retry in retries[:SHOWN_RETRIES]:
        click.echo(f"  {_retry_line(retry)}")
    if len(retries) > SHOWN_RETRIES:
        click.echo(f"  ... and {len(retries) - SHOWN_RETRIES} more (status --json lists them)")
    click.echo(f"failed: {figures.failed}")
    click.echo(f"links: {figures.active_links} active")
    click.echo(f"solved tickets whose links are waiting to end: {figures.solved_tickets}")
    click.echo(f"redis: {where}, {figures.server}")


def _attachments(
    ctx: click.Context, session_id: str | None, target: str | None
) -> dict[str, list[dict[str, Any]]]:
    """What ``status`` shows for a selection, as data (``--json`` prints it as it is)."""
    from worker.attach.ledger import Ledger
    from worker.attach.links import Links
    from worker.jobs.scheduler import waiting_retries
    from worker.jobs.status import attachments

    checked_session(session_id)
    project_id = config_of(ctx, *POSTHOG_PROJECT).posthog.project
    links = Links(redis_of(ctx), project_id)
    found = attachments(
        Ledger(redis_of(ctx), project_id),
        failed_jobs_of(ctx),
        session_id,
        target,
    )
    return {
        "attachments": [
            {
                "target": found_target,
                "session_id": found_session,
                "steps": {k: _shown(k, v) for k, v in sorted(record.items())},
                "link_state": _link_state(links, found_session, found_target, config_of(ctx))
                if "link" in record
                else None,
            }
            for found_target, found_session, record in found.landed
        ],
        "failed": [dataclasses.asdict(job) for job in found.failed],
        "retries": [
            dataclasses.asdict(retry)
            for retry in waiting_retries(redis_of(ctx))
            if (session_id is None or retry.session_id == session_id)
            and (target is None or retry.target == target)
        ],
    }


@click.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration and each configured system's credentials.

    One line per system (a failure names the URL tried), then whether Redis
    answers (REDIS_URL, or the embedded one), then which doors of `serve` are
    on; exit status 1 if any check fails. No secret is printed.

    \b
    Example:
      replay-attach check
    """
    import redis as redis_lib

    from integrations.errors import IntegrationError
    from worker.attach.services import build_services

    config = config_of(ctx, *POSTHOG_CREDENTIALS)
    click.echo("configuration: ok")
    # Neither the ledger nor the request budgets are used here: no Redis needed.
    services = build_services(config, redis_lib.Redis())
    ok = True
    for name, client, url in (
        ("PostHog", services.posthog, config.posthog.host),
        ("Zendesk", services.zendesk, config.zendesk.url),
        ("Jira", services.jira, config.jira.url),
    ):
        if client is None:
            click.echo(f"{name}: not configured (disabled)")
            continue
        try:
            click.echo(f"{name}: ok, {client.check()}")
        except IntegrationError as exc:
            ok = False
            # The configured base URL (it never holds credentials): the first thing to check.
            click.echo(f"{name}: FAILED, {exc.reason} (tried {url})")
    ok = _check_data_dir(config) and _check_redis(ctx, config) and ok
    ok = _check_doors(config) and ok
    sys.exit(0 if ok else 1)


def _check_data_dir(config: Config) -> bool:
    """Whether the embedded Redis would take its data directory (nothing is started)."""
    if config.broker.redis_url is not None:
        return True
    from worker.embedded_redis import EmbeddedRedisError
    from worker.embedded_redis.files import check_private

    # As the embedded Redis checks it: before any symbolic link in it is resolved.
    data_dir = Path(os.path.abspath(config.broker.data_dir.expanduser()))
    try:
        check_private(data_dir)
    except EmbeddedRedisError as exc:
        click.echo(f"embedded Redis: FAILED, {exc}")
        return False
    click.echo(f"embedded Redis: ok, data directory {data_dir}")
    return True


def _check_redis(ctx: click.Context, config: Config) -> bool:
    """Whether the queue's Redis answers (the embedded one is started, as any command would)."""
    from worker.embedded_redis import EmbeddedRedisError
    from worker.jobs.redis_connection import shown_url, store_calls

    try:
        with store_calls(config):
            info = redis_of(ctx).info("server")
    except (EmbeddedRedisError, StoreUnavailable) as exc:
        click.echo(f"Redis: FAILED, {exc}")
        return False
    url = config.broker.redis_url
    where = shown_url(url.get_secret_value()) if url else "the embedded Redis"
    click.echo(f"Redis: ok, {where} answers (Redis {info.get('redis_version', '?')})")
    return True


def _check_doors(config: Config) -> bool:
    """Which doors of ``serve`` are on; a door on for a system that is off is a failure."""
    from worker.intake.doors import doors_on

    ok = True
    for path, on in doors_on(config).items():
        system = {"/webhooks/zendesk": "zendesk", "/webhooks/jira": "jira"}.get(path)
        if on and system is not None and getattr(config, system).url is None:
            ok = False
            click.echo(f"serve {path}: FAILED, on, but {system}.url is not configured")
        else:
            click.echo(f"serve {path}: {'on' if on else 'off (no secret configured)'}")
    return ok
