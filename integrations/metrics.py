"""What the integrations count: every request to a vendor, its answer and how long it took.

Prometheus counters (``prometheus_client``); in a worker fleet every process
writes them to ``PROMETHEUS_MULTIPROC_DIR`` and the fleet's parent serves their
sum (``worker.metrics``).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

VENDOR_REQUESTS = Counter(
    "replay_attach_vendor_requests",
    "Requests to PostHog, Zendesk and Jira, by answer (2xx, 4xx, 429, 5xx; error: no answer).",
    ["system", "method", "status"],
)
VENDOR_REQUEST_SECONDS = Histogram(
    "replay_attach_vendor_request_duration_seconds",
    "Time from sending a request to a vendor to reading its whole answer.",
    ["system"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
VENDOR_THROTTLED = Counter(
    "replay_attach_vendor_throttled",
    "429 answers received from a vendor (its rate limit reached).",
    ["system"],
)


def status_class(status: int | None) -> str:
    """An answer's status as a label: 429 on its own (it matters), else its class."""
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


def observe(system: str, method: str, status: int | None, seconds: float) -> None:
    """Count one request to ``system`` (``status`` None: no answer came).

    Every family's ``system`` label is lower case (``posthog``, ``zendesk``, ``jira``), so
    that one selector matches across them.
    """
    label = system.lower()
    VENDOR_REQUESTS.labels(label, method, status_class(status)).inc()
    VENDOR_REQUEST_SECONDS.labels(label).observe(seconds)
    if status == 429:
        VENDOR_THROTTLED.labels(label).inc()
