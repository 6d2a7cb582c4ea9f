"""Failed jobs: bug reports whose replay could not be attached, with the reason.

Kept in Redis (``FAILED_JOBS_KEY`` hash + ``FAILED_INDEX_KEY`` sorted set) for
``failed.retention_days``, listed, retried and purged with
``replay-attach failed``. Unlike dramatiq's dead letters, each record says why,
in words a support engineer can act on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.errors import ActorNotFound
from dramatiq.middleware import Middleware

from worker import keys
from worker.jobs.dramatiq_compat import failure_of
from worker.jobs.producer import BugReportQueue

logger = logging.getLogger(__name__)


@dataclass
class FailedJob:
    job_id: str
    #: The message's arguments as received (may not be a valid event).
    event: Any
    session_id: str | None
    target: str | None
    reason: str
    attempts: int
    first_failure_at: float
    last_failure_at: float
    #: The intake door the job came through (``keys.OPTION_DOOR``), kept for its retry.
    door: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: bytes | str) -> FailedJob:
        return cls(**json.loads(text))


def session_of(raw: Any) -> str | None:
    """The session id of a message's argument that is not a valid event, if it has one."""
    if isinstance(raw, dict) and isinstance(raw.get("session_id"), str):
        return str(raw["session_id"])[:200]
    return None


class FailedJobs:
    def __init__(self, client: redis.Redis, retention_days: float) -> None:
        self._redis = client
        self._retention_seconds = retention_days * 86400

    def record(self, job: FailedJob) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.FAILED_JOBS_KEY, job.job_id, job.to_json())
        pipe.zadd(keys.FAILED_INDEX_KEY, {job.job_id: job.last_failure_at})
        pipe.execute()

    def expire_old(self, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - self._retention_seconds
        old: list[bytes] = self._redis.zrangebyscore(keys.FAILED_INDEX_KEY, 0, cutoff)  # type: ignore[assignment]
        if old:
            self.remove([i.decode() for i in old])
        return len(old)

    def all(self) -> list[FailedJob]:
        self.expire_old()
        ids: list[bytes] = self._redis.zrange(keys.FAILED_INDEX_KEY, 0, -1)  # type: ignore[assignment]
        if not ids:
            return []
        raw = self._redis.hmget(keys.FAILED_JOBS_KEY, ids)
        return [FailedJob.from_json(item) for item in raw if item is not None]

    def get(self, job_ids: list[str]) -> dict[str, FailedJob]:
        if not job_ids:
            return {}
        raw: list[bytes | None] = self._redis.hmget(keys.FAILED_JOBS_KEY, job_ids)  # type: ignore[assignment]
        return {
            i: FailedJob.from_json(r) for i, r in zip(job_ids, raw, strict=True) if r is not None
        }

    def remove(self, job_ids: list[str]) -> int:
        if not job_ids:
            return 0
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(keys.FAILED_JOBS_KEY, *job_ids)
        pipe.zrem(keys.FAILED_INDEX_KEY, *job_ids)
        removed, _ = pipe.execute()
        return int(removed)

    def count(self) -> int:
        return int(self._redis.zcard(keys.FAILED_INDEX_KEY))

    def record_undecodable(self, redis_id: str, data: bytes, reason: str) -> None:
        """Record a message the consumer set aside because it could not be decoded."""
        now = time.time()
        self.record(
            FailedJob(
                job_id=redis_id,
                event=data.decode("utf-8", "replace")[:2000],
                session_id=None,
                target=None,
                reason=f"invalid message: {reason}",
                attempts=1,
                first_failure_at=now,
                last_failure_at=now,
            )
        )

    def retry(self, job_ids: list[str], queue: BugReportQueue) -> int:
        """Enqueue these failed jobs again (same job id, fresh attempts), then forget them."""
        jobs = self.get(job_ids)
        for job_id, job in jobs.items():
            queue.requeue(job.event, job_id, job.door)
            self.remove([job_id])
        return len(jobs)


class RecordDeadLetters(Middleware):
    """Records as a failed job every message dramatiq moves to its dead letters.

    The actor records its own outcomes; dramatiq dead-letters a message only when that
    failed (Redis unreachable for longer than the actor waits, its own retries then
    spent) or when no actor of this worker has the message's name. Either way a support
    engineer must find it in ``failed list``, not only among dramatiq's dead letters.
    """

    def __init__(self, failed: FailedJobs) -> None:
        self._failed = failed

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.broker.MessageProxy) -> None:
        error = failure_of(message)
        if isinstance(error, ActorNotFound):
            reason = (
                f"invalid message: no worker handles actor {message.actor_name!r} "
                "(written by hand, or by another application)"
            )
        else:
            what = type(error).__name__ if error is not None else "no exception recorded"
            reason = f"dramatiq gave up on the job after its own retries ({what})"
        raw: Any = message.args[0] if message.args else None
        now = time.time()
        try:
            self._failed.record(
                FailedJob(
                    job_id=message.message_id,
                    event=raw,
                    session_id=session_of(raw),
                    target=None,
                    reason=reason,
                    attempts=int(message.options.get("retries", 0)) + 1,
                    first_failure_at=now,
                    last_failure_at=now,
                )
            )
        except redis.RedisError as exc:
            logger.error("could not record dead-lettered job %s: %s", message.message_id, exc)
