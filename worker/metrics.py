"""What the product counts, and the Redis figures read when Prometheus scrapes.

Counters are ``prometheus_client``'s: in ``replay-attach worker`` and ``serve``
every process writes them to ``PROMETHEUS_MULTIPROC_DIR`` (a directory the
command makes for its processes), and ``/metrics`` serves their sum. The
figures kept in Redis (queue depth, the oldest waiting job's age, scheduled
retries, failed jobs, links) are read at each scrape, cheaply: a few O(1)
commands.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from dramatiq import Message
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from worker import keys
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


class RedisFigures(Collector):
    """The queue's and the links' figures, read from Redis when scraped."""

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        self._client = client
        self._queue_key, self._messages_key = keys.queue_keys(queue_name)

    def collect(self) -> Iterator[Metric]:
        pipe = self._client.pipeline(transaction=False)
        pipe.llen(self._queue_key)
        pipe.lindex(self._queue_key, 0)
        pipe.zcard(keys.SCHEDULED_KEY)
        pipe.zcard(keys.FAILED_INDEX_KEY)
        pipe.zcard(keys.LINKS_BY_TIME_KEY)
        pipe.zcard(keys.LINKS_REVOKED_KEY)
        pipe.zcard(keys.SOLVED_TICKETS_KEY)
        queued, oldest_id, scheduled, failed, active, revoked, solved = pipe.execute()
        age = 0.0
        if oldest_id is not None:
            data = self._client.hget(self._messages_key, oldest_id)
            if data is not None:
                sent_ms = Message.decode(data).message_timestamp  # type: ignore[arg-type]
                age = max(0.0, time.time() - sent_ms / 1000)
        yield _gauge("replay_attach_queue_depth", "Jobs waiting on the queue.", queued)
        yield _gauge(
            "replay_attach_oldest_waiting_job_age_seconds",
            "How long the job at the head of the queue has waited (0: none waits).",
            age,
        )
        yield _gauge(
            "replay_attach_scheduled_retries", "Jobs waiting in Redis for their retry.", scheduled
        )
        yield _gauge(
            "replay_attach_oldest_retry_age_seconds",
            "How long the job waiting for a retry that began first has been trying, since its "
            "first attempt (0: none waits).",
            self._oldest_retry_age(),
        )
        yield _gauge("replay_attach_failed_jobs", "Failed jobs kept (failed list).", failed)
        links = GaugeMetricFamily(
            "replay_attach_links",
            "Public links by state: active, or revoked (kept 90 days after).",
            labels=["state"],
        )
        links.add_metric(["active"], float(active))
        links.add_metric(["revoked"], float(revoked))
        yield links
        yield _gauge(
            "replay_attach_solved_tickets_waiting",
            "Solved tickets whose links are waiting to end.",
            solved,
        )

    def _oldest_retry_age(self) -> float:
        """Read from the retries due soonest: all of them, unless a flood of retries waits."""
        members: list[bytes] = self._client.zrange(  # type: ignore[assignment]
            keys.SCHEDULED_KEY, 0, OLDEST_RETRY_SAMPLE - 1
        )
        if not members:
            return 0.0
        found: list[bytes | None] = self._client.hmget(  # type: ignore[assignment]
            keys.SCHEDULED_MESSAGES_KEY, members
        )
        firsts = []
        for data in found:
            try:
                options = json.loads(data)["options"] if data else {}
                firsts.append(float(options[keys.OPTION_FIRST_ATTEMPT_AT]))
            except (ValueError, KeyError, TypeError):
                continue
        return max(0.0, time.time() - min(firsts)) if firsts else 0.0


#: How many of the retries due soonest the oldest retry's age is read from, per scrape.
OLDEST_RETRY_SAMPLE = 1000


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


class _WorkerHealth(Collector):
    def __init__(self, healthy: bool) -> None:
        self._healthy = healthy

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "replay_attach_worker_healthy",
            "1 while every worker process of this host is alive and Redis answers.",
            int(self._healthy),
        )


def exposition(client: redis.Redis | None, queue_name: str, healthy: bool | None = None) -> bytes:
    """The metrics of every process of this command, and Redis's figures, as text;
    with ``healthy``, the worker's health too."""
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
    if client is not None:
        figures = CollectorRegistry()
        figures.register(RedisFigures(client, queue_name))
        try:
            text += generate_latest(figures)
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


def serve_intake_metrics(
    host: str, port: int, client: redis.Redis, queue_name: str
) -> ThreadingHTTPServer:
    """``/metrics`` of a ``replay-attach serve``, from a thread of its parent: a listener of
    its own, so that the public port serves the doors and nothing else."""

    def page(path: str) -> Page:
        if path != "/metrics":
            return NOT_FOUND
        return 200, exposition(client, queue_name), TEXT_FORMAT

    return _listen(host, port, page)


def serve_worker_metrics(
    host: str, port: int, client: redis.Redis, queue_name: str, processes: int
) -> ThreadingHTTPServer:
    """``/metrics`` and ``/healthz`` of a ``replay-attach worker``, from a thread of its parent."""

    def page(path: str) -> Page:
        if path not in ("/metrics", "/healthz"):
            return NOT_FOUND
        healthy, detail = worker_health(client, processes)
        if path == "/metrics":
            return 200, exposition(client, queue_name, healthy), TEXT_FORMAT
        detail["status"] = "ok" if healthy else "unhealthy"
        return 200 if healthy else 503, json.dumps(detail).encode(), "application/json"

    server = _listen(host, port, page)
    global _parent_server
    _parent_server = (os.getpid(), server)
    return server
