"""The queue's and the links' figures kept in Redis, read each time Prometheus scrapes.

Cheaply: a few O(1) commands, and the oldest retry's age from the retries due soonest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from worker import keys
from worker.jobs.messages import decode, queue_keys
from worker.metrics import gauge


class RedisFigures(Collector):
    """The queue's and the links' figures, read from Redis when scraped."""

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        self._client = client
        self._queue_key, self._messages_key = queue_keys(queue_name)

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
            try:
                sent_ms = decode(data).sent_at_ms if data is not None else None
            except ValueError:
                sent_ms = None  # an undecodable head is the quarantine's to set aside
            if sent_ms:
                age = max(0.0, time.time() - sent_ms / 1000)
        yield gauge("replay_attach_queue_depth", "Jobs waiting on the queue.", queued)
        yield gauge(
            "replay_attach_oldest_waiting_job_age_seconds",
            "How long the job at the head of the queue has waited (0: none waits).",
            age,
        )
        yield gauge(
            "replay_attach_scheduled_retries", "Jobs waiting in Redis for their retry.", scheduled
        )
        yield gauge(
            "replay_attach_oldest_retry_age_seconds",
            "How long the job waiting for a retry that began first has been trying, since its "
            "first attempt (0: none waits).",
            self._oldest_retry_age(),
        )
        yield gauge("replay_attach_failed_jobs", "Failed jobs kept (failed list).", failed)
        links = GaugeMetricFamily(
            "replay_attach_links",
            "Public links by state: active, or revoked (kept 90 days after).",
            labels=["state"],
        )
        links.add_metric(["active"], float(active))
        links.add_metric(["revoked"], float(revoked))
        yield links
        yield gauge(
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
                first = decode(data).first_attempt_at if data else None
            except (ValueError, TypeError):
                continue
            if first is not None:
                firsts.append(first)
        return max(0.0, time.time() - min(firsts)) if firsts else 0.0


#: How many of the retries due soonest the oldest retry's age is read from, per scrape.
OLDEST_RETRY_SAMPLE = 1000
