"""The intake benchmark's peer: the simplest correct receiver of signed Zendesk deliveries.

What any receiver of these webhooks must do, and nothing more: check the Zendesk
signature and its timestamp's freshness (``worker.intake.senders.zendesk``, as
the intake does), read the ticket and the session from the JSON body, and write one
dramatiq message where dramatiq's enqueue puts it (its data in the queue's hash,
its id at the end of the queue's list, in one MULTI/EXEC), answering 202 with the
job id. No deduplication, no ticket states, no rate limit, no load shedding, no
batching of requests into one Redis call, no metrics, no logging per delivery.

Served by ``bench/intake.py`` with uvicorn, as the intake is (same processes,
uvloop and httptools); each process reads the configuration as the intake's do.
Not part of the product: a yardstick.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.attach.events import InvalidEvent, parse_event
from worker.config import load_config
from worker.intake.senders.zendesk import zendesk_signature_problem
from worker.jobs.messages import queue_keys
from worker.jobs.producer import encode_report
from worker.jobs.redis_connection import resolve_redis_url

DOOR = "/webhooks/zendesk"

config = load_config()
_secret = config.intake.zendesk_webhook_secret
if _secret is None:
    raise SystemExit("the peer receiver needs ZENDESK_WEBHOOK_SECRET")
SECRET = _secret
QUEUE_KEY, MESSAGES_KEY = queue_keys(config.broker.queue)
_redis: dict[str, aioredis.Redis] = {}


def _event(body: bytes) -> dict[str, Any]:
    """The event a Zendesk trigger's body carries; raises ValueError (or its kin) when none."""
    data = json.loads(body)
    return {"session_id": data["session_id"], "zendesk_ticket": int(data["ticket_id"])}


async def receive_zendesk(request: Request) -> Response:
    body = await request.body()
    now = datetime.now(timezone.utc)
    tolerance = config.intake.timestamp_tolerance_seconds
    if zendesk_signature_problem(SECRET, body, request.headers, now, tolerance):
        return JSONResponse({"error": "missing or invalid credentials"}, status_code=401)
    try:
        report = parse_event(_event(body))
    except (ValueError, KeyError, TypeError, InvalidEvent):
        return JSONResponse({"error": "not a Zendesk bug report"}, status_code=400)
    delivery_id = request.headers.get("x-zendesk-webhook-invocation-id")
    message = encode_report(report, config.broker.queue, delivery_id, DOOR)
    pipe = _redis["client"].pipeline(transaction=True)
    pipe.hset(MESSAGES_KEY, message.redis_id, message.data)
    pipe.rpush(QUEUE_KEY, message.redis_id)
    await pipe.execute()
    return JSONResponse({"job_ids": [message.job_id]}, status_code=202)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    _redis["client"] = aioredis.Redis.from_url(resolve_redis_url(config))
    try:
        yield
    finally:
        await _redis.pop("client").aclose()


app = Starlette(
    routes=[
        Route(DOOR, receive_zendesk, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
