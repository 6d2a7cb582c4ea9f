"""``replay-attach serve``: bug reports over HTTP, from any backend and from signed webhooks."""

from __future__ import annotations

import logging
import socket

import click

from worker.cli.context import config_of, die


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface, behind TLS).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8080, show_default=True, envvar="PORT"
)
@click.option(
    "--workers",
    "processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9192,
    show_default=True,
    envvar="REPLAY_ATTACH_METRICS_PORT",
    show_envvar=True,
    help="Serve /metrics (Prometheus, every server process together) here, apart from "
    "the doors; 0: off.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="REPLAY_ATTACH_METRICS_HOST",
    show_envvar=True,
    help="Address of the metrics port (0.0.0.0 for a Prometheus on another host).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    processes: int,
    metrics_port: int,
    metrics_host: str,
) -> None:
    """Take bug reports over HTTP until SIGTERM (requests in flight finish first).

    \b
    Doors, each off (404) until its secret is configured (see `check`):
      POST /v1/bug-reports    Authorization: Bearer <REPLAY_ATTACH_INTAKE_TOKENS>
      POST /webhooks/zendesk  signed with ZENDESK_WEBHOOK_SECRET
      POST /webhooks/jira     signed with JIRA_WEBHOOK_SECRET (field JIRA_SESSION_FIELD)
      POST /webhooks/posthog  signed with POSTHOG_WEBHOOK_SECRET, or an intake token
    Also GET /healthz, GET /readyz (Redis answers) and GET /openapi.json (with an
    intake token). /metrics is served on --metrics-port only.
    A 202 answer means the report is in Redis; 429 and 503 mean "send again later".
    Limits (intake section of config.yaml): read_deadline_seconds,
    max_bodies_read_at_once, events_per_minute_per_token, max_queue_depth.

    \b
    Example:
      REPLAY_ATTACH_INTAKE_TOKENS=... replay-attach serve --port 8080
    """
    config = config_of(ctx)
    from worker.intake.doors import doors_on
    from worker.intake.server import run_intake_server
    from worker.jobs.redis_connection import resolve_redis_url

    on = [path for path, is_on in doors_on(config).items() if is_on]
    if not on:
        die(
            "no door is on: set REPLAY_ATTACH_INTAKE_TOKENS, ZENDESK_WEBHOOK_SECRET, "
            "JIRA_WEBHOOK_SECRET or POSTHOG_WEBHOOK_SECRET (see the intake section of "
            "config.yaml)"
        )
    _refuse_a_taken_address(host, port)
    # Start (or join) the embedded Redis before the server's processes start, so
    # that its lifetime spans all of them.
    url = resolve_redis_url(config)
    logging.getLogger().setLevel(logging.INFO)
    # The address is said by uvicorn ("Uvicorn running on ...") once it listens there.
    logging.getLogger(__name__).info("replay-attach serve, doors on: %s", ", ".join(on))
    from worker.cli.run import metrics_directory

    # Every server process counts its deliveries; /metrics serves their sum.
    with metrics_directory(metrics_port):
        if metrics_port:
            from worker.jobs.redis_connection import redis_client
            from worker.jobs.redis_figures import RedisFigures
            from worker.metrics import serve_intake_metrics

            figures = RedisFigures(redis_client(url), config.broker.queue)
            try:
                serve_intake_metrics(metrics_host, metrics_port, figures)
            except OSError as exc:
                die(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror}")
        run_intake_server(host, port, processes)


def _refuse_a_taken_address(host: str, port: int) -> None:
    """Exit with one line when ``host:port`` cannot be listened on (taken, or not this host's),
    before anything says that it is served."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As uvicorn binds: a port in TIME_WAIT is free to it.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        die(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
