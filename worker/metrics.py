"""What the product counts, and the Redis figures read when Prometheus scrapes.

Counters are ``prometheus_client``'s: in ``replay-attach worker`` and ``serve``
every process writes them to ``PROMETHEUS_MULTIPROC_DIR`` (a directory the
command makes for its processes), and ``/metrics`` serves their sum, with the
figures kept in Redis (``worker.jobs.redis_figures``) read at each scrape.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from worker.attach.tickets import Ticket

log = logging.getLogger(__name__)

#: The environment variable prometheus_client's multiprocess mode reads.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

JOBS = Counter(
    "replay_attach_jobs",
    "Jobs by outcome: attached, already_attached, no_recording, retry, failed, revoked, "
    "requester_mismatch, requester_unknown.",
    ["system", "outcome"],
)
BUDGET_WAITS = Counter(
    "replay_attach_rate_budget_waits",
    "Requests that waited for a permit of a request budget (rate_limits).",
    ["system"],
)
INTAKE_DELIVERIES = Counter(
    "replay_attach_intake_deliveries",
    "Deliveries to replay-attach serve, by door and answer.",
    ["door", "status"],
)
INTAKE_REFUSED = Counter(
    "replay_attach_intake_refused",
    "Deliveries serve refused to protect itself and Redis, by door and reason: "
    "rate_limited (429, a token over intake.events_per_minute_per_token), queue_full "
    "(503, intake.max_queue_depth), bodies_busy (503, intake.max_bodies_read_at_once).",
    ["door", "reason"],
)
INTAKE_CLOSED = Counter(
    "replay_attach_intake_requests_closed",
    "Requests that never arrived whole, by reason: read_deadline (closed by serve after "
    "intake.read_deadline_seconds), headers_too_large (431), client_left (the client "
    "closed its connection).",
    ["reason"],
)


def system_of(target: str) -> str:
    """``zendesk:123`` -> ``zendesk``."""
    return Ticket.parse(target).system or "unknown"


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


class _WorkerHealth(Collector):
    def __init__(self, healthy: bool) -> None:
        self._healthy = healthy

    def collect(self) -> Iterator[Metric]:
        yield gauge(
            "replay_attach_worker_healthy",
            "1 while every worker process of this host is alive and Redis answers.",
            int(self._healthy),
        )


def exposition(figures: Collector | None, healthy: bool | None = None) -> bytes:
    """The metrics of every process of this command, and the ``figures`` read from Redis
    (``worker.jobs.redis_figures``), as text; with ``healthy``, the worker's health too."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY  # one process: its own counters
    text = generate_latest(registry)
    if healthy is not None:
        health = CollectorRegistry()
        health.register(_WorkerHealth(healthy))
        text += generate_latest(health)
    if figures is not None:
        read = CollectorRegistry()
        read.register(figures)
        try:
            text += generate_latest(read)
        except redis.RedisError:
            pass  # the counters still count; the figures come back with Redis
    return text


#: The metrics server of this command's parent process, and that process's id.
_parent_server: tuple[int, ThreadingHTTPServer] | None = None


def close_inherited_server() -> None:
    """In a forked worker process: close the parent's listening socket it inherited, so the
    port closes with the parent (and no scrape waits on a process that never answers)."""
    if _parent_server is not None and _parent_server[0] != os.getpid():
        _parent_server[1].socket.close()


def worker_health(client: redis.Redis, processes: int) -> tuple[bool, dict[str, object]]:
    """Whether this worker's processes are all alive and Redis answers."""
    alive = len(multiprocessing.active_children())
    try:
        redis_ok = bool(client.ping())
    except redis.RedisError:
        redis_ok = False
    healthy = alive >= processes and redis_ok
    return healthy, {"processes": alive, "expected": processes, "redis": redis_ok}


#: What a metrics listener answers for a path: (status, body, content type).
Page = tuple[int, bytes, str]
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
NOT_FOUND: Page = (404, b"not found\n", "text/plain")


def _listen(host: str, port: int, page: Callable[[str], Page]) -> ThreadingHTTPServer:
    """A small HTTP listener in a thread of this process, answering GETs with ``page``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                status, body, content_type = page(self.path)
            except Exception:  # a failed scrape must say so, not drop the connection
                log.exception("could not answer %s", self.path)
                status, body, content_type = 500, b"internal error\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every 15 s would drown the process's own lines

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="replay-attach metrics", daemon=True).start()
    return server


def serve_intake_metrics(host: str, port: int, figures: Collector) -> ThreadingHTTPServer:
    """``/metrics`` of a ``replay-attach serve``, from a thread of its parent: a listener of
    its own, so that the public port serves the doors and nothing else."""

    def page(path: str) -> Page:
        if path != "/metrics":
            return NOT_FOUND
        return 200, exposition(figures), TEXT_FORMAT

    return _listen(host, port, page)


def serve_worker_metrics(
    host: str, port: int, client: redis.Redis, figures: Collector, processes: int
) -> ThreadingHTTPServer:
    """``/metrics`` and ``/healthz`` of a ``replay-attach worker``, from a thread of its parent."""

    def page(path: str) -> Page:
        if path not in ("/metrics", "/healthz"):
            return NOT_FOUND
        healthy, detail = worker_health(client, processes)
        if path == "/metrics":
            return 200, exposition(figures, healthy), TEXT_FORMAT
        detail["status"] = "ok" if healthy else "unhealthy"
        return 200 if healthy else 503, json.dumps(detail).encode(), "application/json"

    server = _listen(host, port, page)
    global _parent_server
    _parent_server = (os.getpid(), server)
    return server
