"""``replay-attach worker``, ``demo`` and ``sandbox``: the commands that run until stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

import click

from worker.cli.context import config_of, die
from worker.config import POSTHOG_CREDENTIALS


@click.command()
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
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9191,
    show_default=True,
    envvar="REPLAY_ATTACH_METRICS_PORT",
    show_envvar=True,
    help="Serve /metrics (Prometheus, every process together) and /healthz here; 0: off.",
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
def worker(
    ctx: click.Context,
    processes: int | None,
    threads: int | None,
    metrics_port: int,
    metrics_host: str,
) -> None:
    """Consume bug reports until SIGTERM or SIGINT (in-flight jobs finish first).

    /healthz on the metrics port answers 200 while every worker process is alive
    and Redis answers, 503 otherwise.

    \b
    Example:
      replay-attach worker --processes 2 --threads 8 --metrics-port 9191
    """
    config = config_of(ctx, *POSTHOG_CREDENTIALS)
    logging.getLogger().setLevel(logging.INFO)
    with metrics_directory(metrics_port):
        from worker.jobs.dramatiq_compat import run_worker_processes
        from worker.jobs.redis_connection import redis_client, resolve_redis_url

        # Start (or join) the embedded Redis here, before forking, so that its
        # lifetime spans every worker process.
        url = resolve_redis_url(config)
        count = processes or config.worker.processes
        if metrics_port:
            from worker.jobs.redis_figures import RedisFigures
            from worker.metrics import serve_worker_metrics

            client = redis_client(url)
            figures = RedisFigures(client, config.broker.queue)
            try:
                serve_worker_metrics(metrics_host, metrics_port, client, figures, count)
            except OSError as exc:
                die(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror}")
        http = config.http
        code = run_worker_processes(
            "worker.worker_process:broker",
            processes=count,
            threads=threads or config.worker.threads,
            # In-flight jobs get the time of three requests to finish.
            shutdown_timeout_ms=int(
                (http.connect_timeout_seconds + http.read_timeout_seconds) * 3000
            ),
        )
    sys.exit(code)


@contextlib.contextmanager
def metrics_directory(port: int) -> Iterator[None]:
    """Where every process of the command writes its counters, summed at each scrape.

    Set before any process imports prometheus_client (it reads the variable then).
    """
    if not port:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="replay-attach-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@click.command()
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

    # The demo's own lines tell the story (the commands' logs stay at WARNING).
    sys.exit(run_demo(click.echo, keep=keep))


@click.command()
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
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address the doubles listen on (0.0.0.0 in a container, for the other containers).",
)
@click.option(
    "--jira-deployment",
    type=click.Choice(["cloud", "datacenter"]),
    default="cloud",
    show_default=True,
)
@click.option(
    "--intake-url",
    metavar="URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="Where Zendesk and Jira fire their signed webhooks (URL/webhooks/zendesk and "
    "URL/webhooks/jira): the address of `replay-attach serve`.",
)
def sandbox(
    latency: float,
    fault_rate: float,
    fault_kinds: str,
    port: int,
    host: str,
    jira_deployment: str,
    intake_url: str,
) -> None:
    """Serve local doubles of PostHog, Zendesk and Jira until Ctrl-C.

    Prints the environment variables that point the worker (or your app) at
    them, the webhook secrets and session field the intake server checks
    against, and the address of a page showing every ticket and what landed
    on it. Zendesk fires its webhook when a ticket is created through its API
    with the session id field set, or such a ticket is solved or closed; Jira
    when an issue is created through its API (POST /rest/api/2/issue) with the
    session id field set.

    \b
    Example:
      replay-attach sandbox --latency 0.05 --fault-rate 0.1
    """
    from sandbox.serve import serve

    kinds = [k.strip() for k in fault_kinds.split(",") if k.strip()]
    try:
        serve(click.echo, latency, fault_rate, kinds, port, jira_deployment, intake_url, host)
    except ValueError as exc:
        die(str(exc))
    except OSError as exc:
        die(f"cannot listen on port {port}..{port + 3}: {exc.strerror}")
