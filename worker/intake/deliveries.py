"""Writing accepted deliveries to the queue: all of a delivery or none, and a resent one once.

A delivery (one webhook, or one ``POST /v1/bug-reports`` of up to 1,000
events) is written by one Lua script, atomically: its messages go where
dramatiq's enqueue puts them, and, when it has a deduplication key (the
sender's delivery id, or an ``Idempotency-Key``), those keys are set in the same
step. A resent delivery finds one of its keys and gets the first one's job ids back.
When the queue already holds ``max_queue_depth`` messages, a new delivery is
refused (shed) instead, so that a flood cannot fill Redis.

Deliveries that arrive while a write is in flight wait and go together in the
next script call: under load, one Redis round trip carries many deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from worker import keys
from worker.errors import ReplayAttachError
from worker.jobs.messages import EncodedMessage
from worker.lua import lua_script

#: Deliveries per script call: bounds the time Redis spends in one script.
MAX_DELIVERIES_PER_WRITE = 256

_WRITE_SCRIPT = lua_script(__name__, "delivery_write.lua")


class QueueFull(ReplayAttachError):
    """The queue holds ``max_queue_depth`` messages or more: a new delivery was not written."""


#: The script's mark of a delivery refused because the queue is full.
_SHED = 2


@dataclass(frozen=True)
class Delivery:
    """What one request asks to enqueue."""

    messages: list[EncodedMessage]
    #: The body's sha256, to tell a resent delivery from a different one under the same key.
    digest: str
    #: ``keys.DELIVERY_KEY`` of each thing that identifies a resend of this delivery (none:
    #: nothing does); any one of them found means the delivery was already written.
    dedupe_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Written:
    job_ids: list[str]
    #: True when this was a resend: nothing new was enqueued.
    duplicate: bool = False
    #: True when a resend under the same key carried a different body.
    different_body: bool = False


def dedupe_key(door: str, identity: str) -> str:
    """The Redis key remembering one delivery of a door (by a digest: ids are sender-chosen)."""
    digest = hashlib.sha256(identity.encode()).hexdigest()
    return keys.DELIVERY_KEY.format(door=door, digest=digest)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass
class _Waiting:
    delivery: Delivery
    answer: asyncio.Future[Written] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DeliveryWriter:
    """Writes deliveries to the bug-report queue, batching those that arrive together."""

    def __init__(
        self,
        client: aioredis.Redis,
        queue_key: str,
        messages_key: str,
        ttl_seconds: int,
        max_queue_depth: int = 0,
    ) -> None:
        self._client = client
        self._script = client.register_script(_WRITE_SCRIPT)
        self._queue_key, self._messages_key = queue_key, messages_key
        self._ttl = ttl_seconds
        self._max_depth = max_queue_depth
        self._waiting: list[_Waiting] = []
        self._flushing: asyncio.Task[None] | None = None

    async def write(self, delivery: Delivery) -> Written:
        """Write one delivery; raise redis-py's error when Redis did not take it (the intake
        judges it with ``store_calls``) and ``QueueFull`` when it was shed."""
        waiting = _Waiting(delivery)
        self._waiting.append(waiting)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await waiting.answer

    async def _flush(self) -> None:
        while self._waiting:
            batch = self._waiting[:MAX_DELIVERIES_PER_WRITE]
            del self._waiting[:MAX_DELIVERIES_PER_WRITE]
            try:
                results = await self._run(batch)
            except Exception as exc:  # Redis's error or a bug: no request may be left hanging
                self._fail(batch, exc)
                continue
            for waiting, written in zip(batch, results, strict=True):
                if waiting.answer.done():
                    continue
                if written is None:
                    waiting.answer.set_exception(QueueFull())
                else:
                    waiting.answer.set_result(written)

    @staticmethod
    def _fail(batch: list[_Waiting], error: Exception) -> None:
        for waiting in batch:
            if not waiting.answer.done():
                waiting.answer.set_exception(error)

    async def _run(self, batch: list[_Waiting]) -> list[Written | None]:
        """Each delivery's outcome, None for a shed one."""
        script_keys: list[str] = [self._queue_key, self._messages_key]
        args: list[str | bytes | int] = [self._ttl, self._max_depth]
        for waiting in batch:
            delivery = waiting.delivery
            script_keys += delivery.dedupe_keys
            job_ids = json.dumps([message.job_id for message in delivery.messages])
            args += [len(delivery.dedupe_keys), f"{delivery.digest}\n{job_ids}"]
            args.append(len(delivery.messages))
            for message in delivery.messages:
                args += [message.redis_id, message.data]
        reply = await self._script(keys=script_keys, args=args)
        written: list[Written | None] = []
        pairs = zip(reply[::2], reply[1::2], strict=True)
        for waiting, (seen, record) in zip(batch, pairs, strict=True):
            if seen == _SHED:
                written.append(None)
                continue
            digest, _, job_ids = record.decode().partition("\n")
            written.append(
                Written(
                    job_ids=json.loads(job_ids),
                    duplicate=bool(seen),
                    different_body=bool(seen) and digest != waiting.delivery.digest,
                )
            )
        return written
