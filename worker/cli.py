"""The ``replay-attach`` command line: each command parses its options and calls one module.

Commands import what they use when they run, so that ``replay-attach enqueue``
starts without the worker, the vendor libraries or the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

import click

from worker.attach.events import (
    JIRA_ISSUE_PATTERN,
    SESSION_ID_PATTERN,
    InvalidEvent,
    iter_event_lines,
    parse_event,
)
from worker.config import CONFIG_ENV, Config, ConfigError, load_config

if TYPE_CHECKING:
    import redis

    from worker.jobs.failed import FailedJobs
    from worker.jobs.producer import BugReportQueue

EXIT_USAGE = 2


def _die(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"replay-attach: {message}", err=True)
    sys.exit(code)


def _config(ctx: click.Context) -> Config:
    config: Config | None = ctx.obj.get("config")
    if config is None:
        try:
            config = load_config()
        except ConfigError as exc:
            _die(str(exc))
        ctx.obj["config"] = config
    return config


def _redis(ctx: click.Context) -> redis.Redis:
    from worker.jobs.redis_connection import redis_client, resolve_redis_url

    client: redis.Redis | None = ctx.obj.get("redis")
    if client is None:
        client = ctx.obj["redis"] = redis_client(resolve_redis_url(_config(ctx)))
    return client


def _queue(ctx: click.Context) -> BugReportQueue:
    from worker.jobs.producer import BugReportQueue

    return BugReportQueue(_redis(ctx), _config(ctx).broker.queue)


def _failed(ctx: click.Context) -> FailedJobs:
    from worker.jobs.failed import FailedJobs

    return FailedJobs(_redis(ctx), _config(ctx).failed.retention_days)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Configuration file (default: ${CONFIG_ENV} or the shipped config.yaml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Attach PostHog session replays to Zendesk tickets and Jira issues.

    \b
    Examples:
      replay-attach enqueue --session-id 0192c0de-aaaa-bbbb --zendesk-ticket 123
      replay-attach worker --processes 2 --threads 8
      replay-attach failed list
    """
    ctx.ensure_object(dict)
    if config_path is not None:
        # Exported so that worker processes forked later read the same file.
        os.environ[CONFIG_ENV] = str(config_path.absolute())


@main.command()
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(1, 64),
    help="Worker processes (default: worker.processes).",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(1, 256),
    help="Threads per process (default: worker.threads).",
)
@click.pass_context
def worker(ctx: click.Context, processes: int | None, threads: int | None) -> None:
    """Consume bug reports until SIGTERM or SIGINT (in-flight jobs finish first).

    \b
    Example:
      replay-attach worker --processes 2 --threads 8
    """
    config = _config(ctx)
    from worker.jobs.dramatiq_compat import run_worker_processes
    from worker.jobs.redis_connection import resolve_redis_url

    # Start (or join) the embedded Redis here, before forking, so that its
    # lifetime spans every worker process.
    resolve_redis_url(config)
    http = config.http
    code = run_worker_processes(
        "worker.worker_process:broker",
        processes=processes or config.worker.processes,
        threads=threads or config.worker.threads,
        # In-flight jobs get the time of three requests to finish.
        shutdown_timeout_ms=int((http.connect_timeout_seconds + http.read_timeout_seconds) * 3000),
    )
    sys.exit(code)


@main.command()
@click.option("--session-id", help="The PostHog session id of the recording.")
@click.option("--zendesk-ticket", type=int, help="The Zendesk ticket id to post the note on.")
@click.option("--jira-issue", help="The Jira issue key to link, e.g. BUG-42.")
@click.option(
    "--replay-seconds", type=int, help="Start the replay this many seconds in (adds ?t=)."
)
@click.option("--page-url", help="The page the user reported the bug on.")
@click.option("--description", help="The reporter's own words (shown escaped).")
@click.option(
    "--file",
    "file",
    type=click.File("r", encoding="utf-8"),
    help="JSON Lines file of events ('-' for stdin); all or nothing.",
)
@click.pass_context
def enqueue(
    ctx: click.Context,
    session_id: str | None,
    zendesk_ticket: int | None,
    jira_issue: str | None,
    replay_seconds: int | None,
    page_url: str | None,
    description: str | None,
    file: IO[str] | None,
) -> None:
    """Validate and enqueue bug-report events; print the job id.

    Give one event with --session-id and exactly one of --zendesk-ticket or
    --jira-issue, or many with --file: one JSON object per line, such as
    {"session_id": "0192c0de", "zendesk_ticket": 123}. If any line is invalid
    nothing is enqueued and the line number is reported. Exit status 2 on
    invalid input.

    \b
    Examples:
      replay-attach enqueue --session-id 0192c0de-aaaa --zendesk-ticket 123
      replay-attach enqueue --session-id 0192c0de-aaaa --jira-issue BUG-42
      replay-attach enqueue --file events.jsonl
    """
    single = {
        "session_id": session_id,
        "zendesk_ticket": zendesk_ticket,
        "jira_issue": jira_issue,
        "replay_seconds": replay_seconds,
        "page_url": page_url,
        "description": description,
    }
    given = {k: v for k, v in single.items() if v is not None}
    if file is not None:
        if given:
            _die("--file cannot be combined with single-event options")
        _enqueue_file(ctx, file)
        return
    if not given:
        _die("give --session-id with --zendesk-ticket or --jira-issue, or --file (see --help)")
    try:
        event = parse_event(given)
    except InvalidEvent as exc:
        _die(f"invalid event: {exc}")
    click.echo(_queue(ctx).enqueue(event))


@contextlib.contextmanager
def _rereadable(stream: IO[str]) -> Iterator[IO[str]]:
    """A stream that can be read twice; stdin is spooled to a temporary file."""
    if stream.seekable():
        yield stream
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        shutil.copyfileobj(stream, spool)
        spool.seek(0)
        yield spool


def _enqueue_file(ctx: click.Context, stream: IO[str]) -> None:
    with _rereadable(stream) as source:
        # Pass 1 validates everything, so that one bad line enqueues nothing.
        count = 0
        try:
            for _ in iter_event_lines(source):
                count += 1
        except InvalidEvent as exc:
            _die(f"invalid event on {exc}; nothing was enqueued")
        if count == 0:
            _die("the file holds no events; nothing was enqueued")
        source.seek(0)
        queue = _queue(ctx)
        done = 0
        try:
            done = queue.enqueue_many(event for _, event in iter_event_lines(source))
        except Exception as exc:
            _die(
                f"enqueueing stopped ({type(exc).__name__}): "
                "events before the failure may be queued",
                1,
            )
    click.echo(f"enqueued {done} events")


# ---- failed jobs -----------------------------------------------------------


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


@main.group()
def failed() -> None:
    """List, retry or purge bug reports whose replay could not be attached."""


@failed.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def failed_list(ctx: click.Context, as_json: bool) -> None:
    """Show failed jobs: id, session, ticket, reason, attempts, first and last failure.

    \b
    Example:
      replay-attach failed list --json
    """
    jobs = _failed(ctx).all()
    if as_json:
        for job in jobs:
            click.echo(job.to_json())
        return
    if not jobs:
        click.echo("no failed jobs")
        return
    for job in jobs:
        click.echo(
            f"{job.job_id}  session={job.session_id or '?'}  ticket={job.target or '?'}  "
            f"attempts={job.attempts}  first={_when(job.first_failure_at)}  "
            f"last={_when(job.last_failure_at)}\n    {job.reason}"
        )


def _select(failed: FailedJobs, all_: bool, ids: tuple[str, ...]) -> list[str]:
    if all_ == bool(ids):
        _die("give --all or one or more job ids")
    if all_:
        return [job.job_id for job in failed.all()]
    known = failed.get(list(ids))
    unknown = [i for i in ids if i not in known]
    if unknown:
        _die("no failed job with id " + ", ".join(unknown))
    return list(ids)


@failed.command("retry")
@click.option("--all", "all_", is_flag=True, help="Every failed job.")
@click.argument("job_ids", nargs=-1)
@click.pass_context
def failed_retry(ctx: click.Context, all_: bool, job_ids: tuple[str, ...]) -> None:
    """Enqueue failed jobs again (same job id, fresh attempts) and remove them from the list.

    \b
    Examples:
      replay-attach failed retry --all
      replay-attach failed retry 5e2c...  7a1b...
    """
    failed = _failed(ctx)
    retried = failed.retry(_select(failed, all_, job_ids), _queue(ctx))
    click.echo(f"re-enqueued {retried} jobs")


@failed.command("purge")
@click.option("--all", "all_", is_flag=True, help="Every failed job.")
@click.argument("job_ids", nargs=-1)
@click.pass_context
def failed_purge(ctx: click.Context, all_: bool, job_ids: tuple[str, ...]) -> None:
    """Delete failed jobs for good.

    \b
    Example:
      replay-attach failed purge --all
    """
    failed = _failed(ctx)
    click.echo(f"purged {failed.remove(_select(failed, all_, job_ids))} jobs")


# ---- status and check --------------------------------------------------------


def _selected_target(zendesk_ticket: int | None, jira_issue: str | None) -> str | None:
    if zendesk_ticket is not None and jira_issue is not None:
        _die("invalid selection: give at most one of --zendesk-ticket and --jira-issue")
    if zendesk_ticket is not None:
        if zendesk_ticket <= 0:
            _die("invalid selection: zendesk_ticket: must be a positive integer")
        return f"zendesk:{zendesk_ticket}"
    if jira_issue is not None:
        if not re.match(JIRA_ISSUE_PATTERN, jira_issue.upper()):
            _die("invalid selection: jira_issue: must be a Jira issue key such as BUG-42")
        return f"jira:{jira_issue.upper()}"
    return None


def _show_attachments(ctx: click.Context, session_id: str | None, target: str | None) -> None:
    """What landed for a session and/or a ticket, and any failed job for them."""
    from worker.attach.ledger import Ledger
    from worker.jobs.status import attachments

    if session_id is not None and not re.match(SESSION_ID_PATTERN, session_id):
        _die("invalid selection: session_id: must be 1-200 letters, digits, '-' or '_'")
    ledger = Ledger(_redis(ctx), _config(ctx).posthog.project_id)
    found = attachments(ledger, _failed(ctx), session_id, target)
    if not found.landed and not found.failed:
        click.echo("nothing recorded for that selection")
    for found_target, found_session, record in found.landed:
        click.echo(f"session {found_session} on {found_target}:")
        for key, value in sorted(record.items()):
            state, _, ts = value.partition(":")
            shown = value if key == "link" else f"{state} at {_when(float(ts))}" if ts else value
            click.echo(f"  {key}: {shown}")
    for job in found.failed:
        click.echo(
            f"failed job {job.job_id} (session {job.session_id} on {job.target}): {job.reason}"
        )


@main.command()
@click.option("--session-id", help="Show what landed for this session (on every ticket)...")
@click.option("--zendesk-ticket", type=int, help="...or on this Zendesk ticket...")
@click.option("--jira-issue", help="...or on this Jira issue (combine with --session-id).")
@click.pass_context
def status(
    ctx: click.Context, session_id: str | None, zendesk_ticket: int | None, jira_issue: str | None
) -> None:
    """Queue depth, jobs in flight, scheduled retries, failed jobs; or attachments.

    With --session-id and/or a ticket: what has landed for them (link, note,
    tag, remote link, comment, each pending or done) and their failed jobs.

    \b
    Examples:
      replay-attach status
      replay-attach status --zendesk-ticket 123
      replay-attach status --session-id 0192c0de-aaaa --jira-issue BUG-42
    """
    if session_id is not None or zendesk_ticket is not None or jira_issue is not None:
        _show_attachments(ctx, session_id, _selected_target(zendesk_ticket, jira_issue))
        return
    from worker.jobs.status import queue_figures

    config = _config(ctx)
    figures = queue_figures(_redis(ctx), config.broker.queue, _failed(ctx))
    click.echo(f"queued: {figures.queued}")
    click.echo(f"in flight: {figures.in_flight}")
    click.echo(f"scheduled retries: {figures.scheduled_retries}")
    click.echo(f"failed: {figures.failed}")
    click.echo(f"redis: {'REDIS_URL' if config.broker.redis_url else 'embedded'}")


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration and each configured system's credentials.

    One line per system; exit status 1 if any check fails. No secret is printed.

    \b
    Example:
      replay-attach check
    """
    import redis as redis_lib

    from integrations.errors import IntegrationError
    from worker.attach.services import build_services

    config = _config(ctx)
    click.echo("configuration: ok")
    # Neither the ledger nor the request budgets are used here: no Redis needed.
    services = build_services(config, redis_lib.Redis())
    ok = True
    for name, client in (
        ("PostHog", services.posthog),
        ("Zendesk", services.zendesk),
        ("Jira", services.jira),
    ):
        if client is None:
            click.echo(f"{name}: not configured (disabled)")
            continue
        try:
            click.echo(f"{name}: ok, {client.check()}")
        except IntegrationError as exc:
            ok = False
            click.echo(f"{name}: FAILED, {exc.reason}")
    sys.exit(0 if ok else 1)


# ---- sandbox and demo --------------------------------------------------------


@main.command()
@click.option(
    "--keep", is_flag=True, help="Stay up after the demo so the sandbox page can be browsed."
)
def demo(keep: bool) -> None:
    """Run the product end to end on this machine: no Redis, no credentials needed.

    Starts an embedded Redis, the sandbox doubles of PostHog, Zendesk and Jira
    and a worker, attaches sample bug reports (one recovers from a transient
    outage), prints what landed on each ticket, and cleans up.

    \b
    Example:
      replay-attach demo --keep
    """
    from sandbox.demo import run_demo

    sys.exit(run_demo(click.echo, keep=keep))


@main.command()
@click.option(
    "--latency",
    type=click.FloatRange(0, 60),
    default=0.0,
    help="Seconds every API call takes, the doubles' own work included.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of API calls that fail (0-1).",
)
@click.option(
    "--fault-kinds",
    default="5xx,429,reset,lost_response",
    show_default=True,
    help="Comma-separated: 5xx, 500, 429, reset, lost_response, slow, redirect.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="First of four consecutive ports (0: any free).",
)
@click.option(
    "--jira-deployment",
    type=click.Choice(["cloud", "datacenter"]),
    default="cloud",
    show_default=True,
)
def sandbox(
    latency: float, fault_rate: float, fault_kinds: str, port: int, jira_deployment: str
) -> None:
    """Serve local doubles of PostHog, Zendesk and Jira until Ctrl-C.

    Prints the environment variables that point the worker (or your app) at
    them, and the address of a page showing every ticket and what landed on it.

    \b
    Example:
      replay-attach sandbox --latency 0.05 --fault-rate 0.1
    """
    from sandbox.serve import serve

    kinds = [k.strip() for k in fault_kinds.split(",") if k.strip()]
    try:
        serve(click.echo, latency, fault_rate, kinds, port, jira_deployment)
    except ValueError as exc:
        _die(str(exc))
    except OSError as exc:
        _die(f"cannot listen on port {port}..{port + 3}: {exc.strerror}")
