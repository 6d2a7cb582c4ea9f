"""``replay-attach failed``: list, retry or purge the jobs whose replay could not be attached."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from worker.cli.context import die, failed_jobs_of, queue_of, when

if TYPE_CHECKING:
    from worker.jobs.failed import FailedJobs


@click.group()
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
    jobs = failed_jobs_of(ctx).all()
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
            f"attempts={job.attempts}  first={when(job.first_failure_at)}  "
            f"last={when(job.last_failure_at)}\n    {job.reason}"
        )


def _select(failed: FailedJobs, all_: bool, ids: tuple[str, ...]) -> list[str]:
    if all_ == bool(ids):
        die("give --all or one or more job ids")
    if all_:
        return [job.job_id for job in failed.all()]
    known = failed.get(list(ids))
    unknown = [i for i in ids if i not in known]
    if unknown:
        die("no failed job with id " + ", ".join(unknown))
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
    failed = failed_jobs_of(ctx)
    retried = failed.retry(_select(failed, all_, job_ids), queue_of(ctx))
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
    failed = failed_jobs_of(ctx)
    click.echo(f"purged {failed.remove(_select(failed, all_, job_ids))} jobs")
