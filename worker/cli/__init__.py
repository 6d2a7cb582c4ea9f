"""The ``replay-attach`` command line: each command parses its options and calls one module.

Commands import what they use when they run, so that ``replay-attach enqueue``
starts without the worker, the vendor libraries or the sandbox.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from worker.cli import enqueue, failed, revoke, run, serve, status
from worker.cli.context import die
from worker.config import CONFIG_ENV
from worker.errors import StoreUnavailable


class _Commands(click.Group):
    """The command group: what no command handles itself ends it with one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Imported only now: the embedded Redis's module loads redis, which --help and a
            # command that fails early have no use for.
            from worker.embedded_redis import EmbeddedRedisError

            if isinstance(exc, (EmbeddedRedisError, StoreUnavailable)):
                # Every command reaches Redis through the embedded one when REDIS_URL is unset;
                # its refusals (a data directory others could tamper with, a server that will
                # not start) already name the path and the fix, as StoreUnavailable names the Redis.
                die(str(exc), 1)
            from worker.jobs.redis_connection import store_unavailable

            config = ctx.obj.get("config") if isinstance(ctx.obj, dict) else None
            unavailable = store_unavailable(config, exc) if config else None
            if unavailable is not None:
                # A Redis that is down or misnamed is the operator's to fix, not a bug.
                die(str(unavailable), 1)
            raise


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Configuration file (default: ${CONFIG_ENV} or the shipped config.yaml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="REPLAY_ATTACH_LOG_FORMAT",
    show_envvar=True,
    default="text",
    show_default=True,
    help="text: readable lines; json: one JSON object per line (every process of the command).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, log_format: str) -> None:
    """Attach PostHog session replays to Zendesk tickets and Jira issues.

    \b
    Examples:
      replay-attach enqueue --session-id 0192c0de-aaaa-bbbb --zendesk-ticket 123
      replay-attach worker --processes 2 --threads 8
      replay-attach serve --port 8080
      replay-attach failed list
    """
    ctx.ensure_object(dict)
    # Exported so that worker and server processes started later log alike.
    os.environ["REPLAY_ATTACH_LOG_FORMAT"] = log_format
    from worker.logs import configure_logging

    # Commands a person runs print what matters themselves; worker and serve log INFO.
    configure_logging(level=logging.WARNING)
    if config_path is not None:
        # Exported so that worker processes forked later read the same file.
        os.environ[CONFIG_ENV] = str(config_path.absolute())


main.add_command(enqueue.enqueue)
main.add_command(failed.failed)
main.add_command(status.status)
main.add_command(revoke.revoke)
main.add_command(status.check)
main.add_command(run.worker)
main.add_command(serve.serve)
main.add_command(run.demo)
main.add_command(run.sandbox)
