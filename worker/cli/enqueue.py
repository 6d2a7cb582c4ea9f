"""``replay-attach enqueue``: validate bug-report events and put them on the queue."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO

import click

from worker.attach.events import (
    BugReport,
    InvalidEvent,
    iter_event_lines,
    parse_event,
    require_distinct_id,
)
from worker.cli.context import config_of, die, queue_of
from worker.errors import StoreUnavailable


@click.command()
@click.option("--session-id", help="The PostHog session id of the recording.")
@click.option("--zendesk-ticket", type=int, help="The Zendesk ticket id to post the note on.")
@click.option("--jira-issue", help="The Jira issue key to link, e.g. BUG-42.")
@click.option(
    "--replay-seconds", type=int, help="Start the replay this many seconds in (adds ?t=)."
)
@click.option(
    "--page-url",
    help="The page the user reported the bug on. Visible to other local users in the "
    "process list: to keep it private, give the event on stdin with --file - instead.",
)
@click.option(
    "--description",
    help="The reporter's own words (shown escaped). Visible to other local users in the "
    "process list: to keep them private, give the event on stdin with --file - instead.",
)
@click.option(
    "--distinct-id",
    help="PostHog's distinct id of the reporter (posthog.get_distinct_id() in the browser, "
    "taken with the session id): the recording must be theirs.",
)
@click.option(
    "--file",
    "file",
    # Bytes that are not UTF-8 reach iter_event_lines, which names their line.
    type=click.File("r", encoding="utf-8", errors="surrogateescape"),
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
    distinct_id: str | None,
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
      echo '{"session_id": "0192c0de-aaaa", "zendesk_ticket": 123, "description": "..."}' \\
        | replay-attach enqueue --file -
    """
    single = {
        "session_id": session_id,
        "zendesk_ticket": zendesk_ticket,
        "jira_issue": jira_issue,
        "replay_seconds": replay_seconds,
        "page_url": page_url,
        "description": description,
        "distinct_id": distinct_id,
    }
    given = {k: v for k, v in single.items() if v is not None}
    if file is not None:
        if given:
            die("--file cannot be combined with single-event options")
        _enqueue_file(ctx, file)
        return
    if not given:
        die("give --session-id with --zendesk-ticket or --jira-issue, or --file (see --help)")
    try:
        event = _accepted(ctx, parse_event(given))
    except InvalidEvent as exc:
        die(f"invalid event: {exc}")
    click.echo(queue_of(ctx).enqueue(event))


def _accepted(ctx: click.Context, event: BugReport) -> BugReport:
    """Refused here, before Redis is touched, when the configuration asks for a distinct id."""
    return require_distinct_id(event) if config_of(ctx).posthog.require_distinct_id else event


@contextlib.contextmanager
def _rereadable(stream: IO[str]) -> Iterator[IO[str]]:
    """A stream that can be read twice; stdin is spooled to a temporary file."""
    if stream.seekable():
        yield stream
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogateescape") as spool:
        shutil.copyfileobj(stream, spool)
        spool.seek(0)
        yield spool


def _enqueue_file(ctx: click.Context, stream: IO[str]) -> None:
    with _rereadable(stream) as source:
        # Pass 1 validates everything, so that one bad line enqueues nothing.
        count = 0
        try:
            for number, event in iter_event_lines(source):
                try:
                    _accepted(ctx, event)
                except InvalidEvent as exc:
                    raise InvalidEvent(f"line {number}: {exc}") from None
                count += 1
        except InvalidEvent as exc:
            die(f"invalid event on {exc}; nothing was enqueued")
        if count == 0:
            die("the file holds no events; nothing was enqueued")
        source.seek(0)
        from worker.jobs.redis_connection import store_calls

        queue = queue_of(ctx)
        done = 0
        try:
            with store_calls(config_of(ctx)):
                done = queue.enqueue_many(event for _, event in iter_event_lines(source))
        except StoreUnavailable as exc:
            die(f"{exc}; only events before the failure, if any, were enqueued", 1)
        except Exception as exc:
            die(
                f"enqueueing stopped ({type(exc).__name__}): "
                "events before the failure may be queued",
                1,
            )
    click.echo(f"enqueued {done} events")
