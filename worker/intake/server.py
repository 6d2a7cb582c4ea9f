"""Running the intake: uvicorn, one or more processes, stopped gracefully on SIGTERM."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette

#: How long requests in flight may take to finish after SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 30

#: uvicorn's httptools protocol with a deadline and a header bound on each request (protocol).
HTTP_PROTOCOL = "worker.intake.protocol:IntakeProtocol"


def _log_config(level: str) -> dict[str, Any]:
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "plain",
        "stream": "ext://sys.stderr",
        "filters": ["delivery"],
    }
    logger = {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
    # The same lines as every other command's (worker.logs), text or JSON.
    plain = {"()": "worker.logs.formatter"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": plain},
        # Each line of a delivery names it (JSON logs: delivery_id).
        "filters": {"delivery": {"()": "worker.logs.JobFields"}},
        "handlers": {"stderr": handler},
        "loggers": {"uvicorn": logger, "worker": logger},
    }


def run_intake_server(host: str, port: int, processes: int, log_level: str = "info") -> None:
    """Serve until SIGTERM or SIGINT; requests in flight finish first.

    Every process builds the application from the configuration file that
    ``REPLAY_ATTACH_CONFIG`` names, as the worker's processes do.
    """
    uvicorn.run(
        "worker.intake.http_app:application_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_config=_log_config(log_level),
        # One line per delivery comes from the intake itself, without query strings.
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # Senders open many short connections at once; a short backlog would refuse some.
        backlog=2048,
        http=HTTP_PROTOCOL,
    )


@contextlib.contextmanager
def intake_in_thread(app: Starlette, port: int, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` from a thread of this process (the demo); yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, http=HTTP_PROTOCOL
        )
    )
    thread = threading.Thread(target=server.run, name="intake", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the intake did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=GRACEFUL_SHUTDOWN_SECONDS)
