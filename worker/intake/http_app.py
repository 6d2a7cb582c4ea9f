"""The intake's HTTP application: its routes, each door to its sender, and what each answers.

Answers: 202 enqueued (``{"job_ids": [...]}``, the same ids again for a resent
delivery); 200 ignored, with the reason, so that the sender does not resend;
400 invalid JSON or event, naming the field; 401 missing or wrong credentials,
the same answer whatever failed; 404 a door that is off; 408 the request did not
arrive in time and 431 its headers are too large (both answered by ``protocol``);
413 too large; 415 not JSON; 422 an ``Idempotency-Key`` reused for another body;
429 a token over its events per minute; 503 Redis did not take it, the queue is
full, or too many bodies are being read (each with ``Retry-After``: every sender
resends on 5xx).

The public port serves the doors, ``/healthz`` and ``/readyz``; ``/openapi.json``
answers the holders of an intake token; ``/metrics`` has a listener of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.attach.events import InvalidEvent
from worker.config import Config
from worker.errors import StoreUnavailable
from worker.intake.bodies import RequestHeaders, request_headers
from worker.intake.deliveries import DeliveryWriter
from worker.intake.doors import SENDERS
from worker.intake.enqueue import Enqueuer
from worker.intake.openapi import openapi_document
from worker.intake.protocol import READ_DEADLINE_STATE
from worker.intake.rates import TokenRates
from worker.intake.refusals import DOOR_OFF, RETRY_AFTER_SECONDS, Refused
from worker.intake.sender import Sender
from worker.intake.ticket_states import TicketStates
from worker.intake.tokens import token_problem
from worker.jobs.messages import queue_keys
from worker.jobs.redis_connection import resolve_redis_url, store_calls
from worker.logs import job_fields
from worker.metrics import INTAKE_DELIVERIES, INTAKE_REFUSED

log = logging.getLogger(__name__)

#: How long a Redis command may take before the delivery is answered 503.
REDIS_TIMEOUT_SECONDS = 5.0


class Intake:
    """The doors, over one Redis connection pool and one delivery writer per process."""

    def __init__(self, config: Config, redis_url: str | None = None) -> None:
        self.config = config
        self._redis_url = redis_url
        self._client: aioredis.Redis | None = None
        self._enqueuer: Enqueuer | None = None
        self._body_slots = asyncio.Semaphore(config.intake.max_bodies_read_at_once)

    # ----------------------------------------------------------------- lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[dict[str, float]]:
        # Starts (or joins) the embedded Redis when no redis_url is configured.
        url = self._redis_url or resolve_redis_url(self.config)
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        intake = self.config.intake
        queue_key, messages_key = queue_keys(self.config.broker.queue)
        ttl = int(intake.deduplicate_hours * 3600)
        self._enqueuer = Enqueuer(
            self.config,
            DeliveryWriter(self._client, queue_key, messages_key, ttl, intake.max_queue_depth),
            TicketStates(self._client, ttl),
            TokenRates(self._client, intake.events_per_minute_per_token),
        )
        # What exists now lives as long as the process: left to the collector, each full
        # pass walks it all and holds up every request in flight meanwhile.
        gc.collect()
        gc.freeze()
        try:
            # The server's protocol reads the deadline here (worker.intake.protocol).
            yield {READ_DEADLINE_STATE: intake.read_deadline_seconds}
        finally:
            await self._client.aclose()

    def application(self) -> Starlette:
        routes = [
            *(Route(sender.door, self._door(sender), methods=["POST"]) for sender in SENDERS),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/readyz", self._readyz, methods=["GET"]),
            Route("/openapi.json", self._openapi, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    # ----------------------------------------------------------------- the doors

    def _door(self, sender: Sender) -> Callable[[Request], Awaitable[Response]]:
        door = sender.door

        async def answer(request: Request) -> Response:
            headers = request_headers(request)
            delivery_id = _delivery_id(headers.get(sender.delivery_id_header, ""))
            with job_fields(delivery_id=delivery_id):
                try:
                    response = await answer_delivery(request, headers, door, delivery_id)
                except ClientDisconnect:
                    # Nobody is left to answer; the server's protocol logged it once.
                    return Response(status_code=400)
                INTAKE_DELIVERIES.labels(door, str(response.status_code)).inc()
                return response

        async def answer_delivery(
            request: Request, headers: RequestHeaders, door: str, delivery_id: str
        ) -> Response:
            detail = None
            try:
                accepted = await sender.accept(request, headers, self.config, self._body_slots)
                assert self._enqueuer is not None
                response = await self._enqueuer.enqueue(door, accepted, delivery_id)
            except Refused as refused:
                retry = None
                if refused.retry_after is not None:
                    retry = {"Retry-After": str(refused.retry_after)}
                if refused.reason is not None:
                    INTAKE_REFUSED.labels(door, refused.reason).inc()
                detail = refused.detail
                response = JSONResponse(
                    {"error": refused.message}, status_code=refused.status, headers=retry
                )
            except InvalidEvent as exc:
                response = JSONResponse({"error": str(exc)}, status_code=400)
            except (StoreUnavailable, aioredis.RedisError) as exc:
                # A Redis that answers but cannot take the delivery now (out of memory, a
                # replica during a failover) is as unavailable to the sender as one that
                # does not answer: nothing was accepted, and it should send again.
                log.warning("%s: Redis unavailable (%s), answered 503", door, exc)
                response = JSONResponse(
                    {"error": "the queue is unavailable; send again later"},
                    status_code=503,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            if response.status_code >= 400:
                # Why a 401 was answered is said here only: the answer reveals nothing.
                why = f": {detail}" if detail else ""
                log.info("%s: answered %d%s", door, response.status_code, why)
            return response

        return answer

    # ----------------------------------------------------------------- health

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        assert self._client is not None
        try:
            with store_calls(self.config):
                await self._client.ping()
        except StoreUnavailable:
            return JSONResponse(
                {"status": "Redis unavailable"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ready"})

    async def _openapi(self, request: Request) -> Response:
        # The doors' description is for those who call them: the holders of an intake token.
        tokens = self.config.intake.tokens
        if not tokens:
            return JSONResponse({"error": DOOR_OFF.message}, status_code=404)
        if token_problem(request.headers.get("authorization"), tokens) is not None:
            return JSONResponse({"error": "missing or invalid credentials"}, status_code=401)
        return JSONResponse(openapi_document())


def _delivery_id(given: str) -> str:
    """The sender's id of this delivery (its own header), kept with the jobs it enqueues and
    in their log lines; a new one when it names none usable."""
    value = given.strip()
    if value and len(value) <= 255 and value.isprintable():
        return value
    return uuid.uuid4().hex


def create_application(config: Config, redis_url: str | None = None) -> Starlette:
    """The intake application for ``config``; Redis is connected when it starts."""
    return Intake(config, redis_url).application()


def application_from_environment() -> Starlette:
    """What each ``replay-attach serve`` process runs: the configuration it was started with."""
    from worker.config import load_config

    return create_application(load_config())
