"""``replay-attach revoke``: end shared links now, and say so on the tickets that held them."""

from __future__ import annotations

import getpass
import socket
import sys
import time
from typing import TYPE_CHECKING

import click

from worker.cli.context import checked_session, config_of, die, redis_of, selected_target, when
from worker.config import POSTHOG_CREDENTIALS

if TYPE_CHECKING:
    from worker.attach.links import Link, Links


@click.command()
@click.option("--session-id", help="Revoke this session's link (on every ticket that holds it)...")
@click.option("--zendesk-ticket", type=int, help="...or the links this Zendesk ticket holds...")
@click.option("--jira-issue", help="...or the links this Jira issue holds...")
@click.option(
    "--older-than",
    "older_than_days",
    type=click.FloatRange(min=0),
    help="...or every link shared more than this many days ago (fractions allowed).",
)
@click.option(
    "--reason", default="revoked by command", show_default=True, help="Said on the tickets."
)
@click.option("--dry-run", is_flag=True, help="Print what would be revoked; change nothing.")
@click.pass_context
def revoke(
    ctx: click.Context,
    session_id: str | None,
    zendesk_ticket: int | None,
    jira_issue: str | None,
    older_than_days: float | None,
    reason: str,
    dry_run: bool,
) -> None:
    """End shared replay links: dead at PostHog at once, and a note on each ticket.

    A link is the session's shared recording: revoking it for one ticket ends it
    for every ticket it was posted on, and each gets the note (Zendesk: an
    internal note; Jira: the remote link removed and a comment). Each link is
    checked dead (its page answers 404) before it counts as revoked. Safe to run
    again: what was done is not done twice, and an interrupted run is finished.
    One line per link; exit status 1 if any could not be revoked.

    \b
    Examples:
      replay-attach revoke --zendesk-ticket 101 --reason "ticket solved"
      replay-attach revoke --session-id 0192c0de-aaaa
      replay-attach revoke --older-than 90 --dry-run
    """
    selectors = [session_id, zendesk_ticket, jira_issue, older_than_days]
    if sum(value is not None for value in selectors) != 1:
        die("give exactly one of --session-id, --zendesk-ticket, --jira-issue, --older-than")
    if not reason.strip():
        die("--reason: must not be empty")
    target = selected_target(zendesk_ticket, jira_issue)
    checked_session(session_id)
    from worker.attach.links import Links

    links = Links(redis_of(ctx), config_of(ctx, *POSTHOG_CREDENTIALS).posthog.project)
    before = None if older_than_days is None else time.time() - older_than_days * 86400
    sessions = links.sessions(session_id=session_id, target=target, shared_before=before)
    if not sessions:
        revoked = links.revoked_of(target) if target is not None else []
        for link in revoked:
            click.echo(f"already revoked: {_revoked_line(link)}")
        if not revoked:
            click.echo("no link recorded for that selection")
        return
    ok = _revoke_each(ctx, links, sessions, reason.strip(), dry_run)
    sys.exit(0 if ok else 1)


def _revoke_each(
    ctx: click.Context, links: Links, sessions: list[str], reason: str, dry_run: bool
) -> bool:
    from integrations.errors import IntegrationError
    from worker.attach.leases import LockBusy
    from worker.attach.revoke import revoke_link
    from worker.attach.services import build_services

    config = config_of(ctx)
    services = build_services(config, redis_of(ctx))
    by = f"replay-attach revoke by {getpass.getuser()} on {socket.gethostname()}"
    ok = True
    for session in sessions:
        link = links.get(session)
        if link is None:
            continue
        tickets = ", ".join(sorted(link.tickets)) or "no ticket"
        if dry_run:
            state = "already revoked" if link.revoked and link.unshared else "would revoke"
            click.echo(f"{state}: session {session}, shared {when(link.shared_at)}, on {tickets}")
            continue
        try:
            done = revoke_link(session, reason, by, services)
        except IntegrationError as exc:
            ok = False
            click.echo(
                f"FAILED: session {session} on {tickets}: {exc.reason} (run again to finish)"
            )
            continue
        except LockBusy:
            ok = False
            click.echo(f"FAILED: session {session}: another process is sharing or revoking it now")
            continue
        if done is None:
            continue
        if done.already:
            click.echo(f"already revoked: {_revoked_line(links.get(session) or link)}")
            continue
        rotated = "" if done.rotated else " (PostHog could not rotate its token)"
        told = ", ".join(done.told) or "no ticket left to tell"
        click.echo(f"revoked: session {session}, link dead{rotated}; told {told}")
    return ok


def _revoked_line(link: Link) -> str:
    """A revoked link as ``revoke`` reports it: on which tickets, when, why."""
    tickets = ", ".join(sorted(link.tickets)) or "no ticket"
    at = when(link.revoked_at) if link.revoked_at else "at an unknown time"
    why = f" ({link.revoked_reason})" if link.revoked_reason else ""
    return f"session {link.session_id} on {tickets}, revoked {at}{why}"
