"""What ``replay-attach status`` shows: the queue's figures, or what landed for a selection."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker import keys
from worker.attach.ledger import Ledger
from worker.jobs.failed import FailedJob, FailedJobs
from worker.jobs.messages import acks_key, delay_queue_name, queue_keys
from worker.jobs.scheduler import scheduled_count


@dataclass(frozen=True)
class QueueFigures:
    queued: int
    in_flight: int
    scheduled_retries: int
    failed: int
    #: Public links not revoked, and solved tickets whose links are waiting to end.
    active_links: int
    solved_tickets: int
    #: The redis-server answering: its version and, when it says, its executable.
    server: str


def queue_figures(client: redis.Redis, queue_name: str, failed: FailedJobs) -> QueueFigures:
    in_flight = sum(
        int(client.scard(key)) for key in client.scan_iter(match=acks_key("*", queue_name))
    )
    delayed = queue_keys(delay_queue_name(queue_name))[1]
    info = client.info("server")
    server = f"redis-server {info.get('redis_version', '?')}"
    if info.get("executable"):
        server += f" ({info['executable']})"
    return QueueFigures(
        queued=int(client.llen(queue_keys(queue_name)[0])),
        in_flight=in_flight,
        scheduled_retries=scheduled_count(client) + int(client.hlen(delayed)),
        failed=failed.count(),
        active_links=int(client.zcard(keys.LINKS_BY_TIME_KEY)),
        solved_tickets=int(client.zcard(keys.SOLVED_TICKETS_KEY)),
        server=server,
    )


@dataclass(frozen=True)
class Attachments:
    #: (target, session, ledger record) of each pair found.
    landed: list[tuple[str, str, dict[str, str]]]
    failed: list[FailedJob]


def attachments(
    ledger: Ledger, failed: FailedJobs, session_id: str | None, target: str | None
) -> Attachments:
    """What the ledger holds for the pairs matching the selection, and their failed jobs."""
    return Attachments(
        landed=ledger.find(target, session_id),
        failed=[
            job
            for job in failed.all()
            if (session_id is None or job.session_id == session_id)
            and (target is None or job.target == target)
        ],
    )
