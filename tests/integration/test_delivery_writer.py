"""The intake's delivery writer against a real Redis: batches, resends and their order."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis
from dramatiq import Message

from worker import keys
from worker.attach.events import BugReport
from worker.intake.deliveries import Delivery, DeliveryWriter, Written, dedupe_key
from worker.jobs.messages import queue_keys
from worker.jobs.producer import encode_report

QUEUE_KEY, MESSAGES_KEY = queue_keys(keys.QUEUE_NAME)


def delivery(first: int, count: int, key: str | None = None, digest: str = "d") -> Delivery:
    messages = [
        encode_report(BugReport(session_id=f"s-{n}", zendesk_ticket=n + 1), keys.QUEUE_NAME)
        for n in range(first, first + count)
    ]
    return Delivery(messages, digest, () if key is None else (key,))


def write_together(redis_url: str, deliveries: list[Delivery]) -> list[Written]:
    """Write ``deliveries`` concurrently: they go to Redis in one script call."""

    async def run() -> list[Written]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            writer = DeliveryWriter(client, QUEUE_KEY, MESSAGES_KEY, ttl_seconds=60)
            return list(await asyncio.gather(*(writer.write(d) for d in deliveries)))
        finally:
            await client.aclose()

    return asyncio.run(run())


def queued_sessions(client: redis.Redis) -> list[str]:
    sessions = []
    for redis_id in client.lrange(QUEUE_KEY, 0, -1):
        data = client.hget(MESSAGES_KEY, redis_id)
        assert data is not None, "a queued id without its message"
        sessions.append(Message.decode(data).args[0]["session_id"])
    return sessions


def test_deliveries_written_together_keep_their_order_past_a_thousand_messages(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # 2,500 messages in one script call: written in several chunks, all of them, in order.
    batch = [delivery(0, 1000), delivery(1000, 1000), delivery(2000, 500)]
    written = write_together(redis_url, batch)
    assert [len(w.job_ids) for w in written] == [1000, 1000, 500]
    assert not any(w.duplicate for w in written)
    assert queued_sessions(redis_client) == [f"s-{n}" for n in range(2500)]
    assert redis_client.hlen(MESSAGES_KEY) == 2500


def test_a_resend_in_the_same_batch_is_written_once_and_answered_with_the_first_ids(
    redis_url: str, redis_client: redis.Redis
) -> None:
    key = dedupe_key("/webhooks/zendesk", "invocation-1")
    first, resent = delivery(0, 1, key, "same"), delivery(5, 1, key, "same")
    other_body = delivery(9, 1, key, "another")
    written = write_together(redis_url, [first, resent, other_body])
    assert [w.duplicate for w in written] == [False, True, True]
    assert written[1].job_ids == written[2].job_ids == written[0].job_ids
    assert [w.different_body for w in written] == [False, False, True]
    assert queued_sessions(redis_client) == ["s-0"]
    assert 0 < redis_client.ttl(key) <= 60
