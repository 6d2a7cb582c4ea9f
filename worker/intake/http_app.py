"""The intake's HTTP application: its doors, and what each one answers.

Answers: 202 enqueued (``{"job_ids": [...]}``, the same ids again for a resent
delivery); 200 ignored, with the reason, so that the sender does not resend;
400 invalid JSON or event, naming the field; 401 missing or wrong credentials,
the same answer whatever failed; 404 a door that is off; 413 too large; 415 not
JSON; 422 an ``Idempotency-Key`` reused for another body; 503 Redis did not
take it (with ``Retry-After``: every sender resends on 5xx).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker import keys
from worker.attach.events import BugReport, InvalidEvent, require_distinct_id
from worker.config import Config
from worker.intake import doors, signatures
from worker.intake.deliveries import (
    Delivery,
    DeliveryWriter,
    RedisUnavailable,
    body_digest,
    dedupe_key,
)
from worker.intake.openapi import openapi_document
from worker.jobs.producer import encode_report
from worker.jobs.redis_connection import redis_client, resolve_redis_url
from worker.logs import job_fields
from worker.metrics import INTAKE_DELIVERIES, exposition

log = logging.getLogger(__name__)

#: The largest body of one event or one webhook.
MAX_EVENT_BYTES = 64 * 1024
#: The largest body of a list of events, and of a Jira webhook (Jira sends the whole issue).
MAX_BATCH_BYTES = 1024 * 1024
#: The longest ``Idempotency-Key`` (a UUID is 36).
MAX_IDEMPOTENCY_KEY_CHARS = 255
#: What a 503 asks the sender to wait before resending.
RETRY_AFTER_SECONDS = 10
#: How long a Redis command may take before the delivery is answered 503.
REDIS_TIMEOUT_SECONDS = 5.0


class Refused(Exception):
    """A delivery answered with an error status and a message that reveals no secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


UNAUTHORIZED = Refused(401, "missing or invalid credentials")
DOOR_OFF = Refused(404, "not found")


@dataclass(frozen=True)
class Accepted:
    """What a door read from an authenticated delivery."""

    reports: list[BugReport] | doors.Ignored
    #: What identifies a resend of this delivery (None: nothing does).
    identity: str | None
    body: bytes
    #: A ticket solved or reopened, as the delivery tells.
    status: doors.TicketStatus | None = None


#: A request's headers by lower-case name (the first of repeated ones, as Starlette's ``get``).
RequestHeaders = dict[str, str]


def request_headers(request: Request) -> RequestHeaders:
    """The headers once, as a dict: each door looks up several, some of them absent."""
    headers: RequestHeaders = {}
    for name, value in request.scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _read_body(request: Request, headers: RequestHeaders, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"the body is larger than {limit // 1024} KiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is larger than {limit // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _require_json(headers: RequestHeaders) -> None:
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise Refused(415, "send the body as Content-Type: application/json")


class Intake:
    """The doors, over one Redis connection pool and one delivery writer per process."""

    def __init__(self, config: Config, redis_url: str | None = None) -> None:
        self.config = config
        self._redis_url = redis_url
        self._writer: DeliveryWriter | None = None
        self._client: aioredis.Redis | None = None
        self._figures: redis.Redis | None = None

    # ----------------------------------------------------------------- lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Starts (or joins) the embedded Redis when no redis_url is configured.
        url = self._redis_url or resolve_redis_url(self.config)
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        # The figures /metrics reads (queue depth, links...), on a client of their own.
        self._figures = redis_client(url)
        queue_key, messages_key = keys.queue_keys(self.config.broker.queue)
        ttl = int(self.config.intake.deduplicate_hours * 3600)
        self._writer = DeliveryWriter(self._client, queue_key, messages_key, ttl)
        # What exists now lives as long as the process: left to the collector, each full
        # pass walks it all and holds up every request in flight meanwhile.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await self._client.aclose()
            self._figures.close()

    def application(self) -> Starlette:
        routes = [
            *(
                Route(door, self._door(door, read), methods=["POST"])
                for door, read in (
                    ("/v1/bug-reports", self._bug_reports),
                    ("/webhooks/zendesk", self._zendesk),
                    ("/webhooks/jira", self._jira),
                    ("/webhooks/posthog", self._posthog),
                )
            ),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/readyz", self._readyz, methods=["GET"]),
            Route("/openapi.json", self._openapi, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)

    # ----------------------------------------------------------------- the doors

    def _door(
        self, door: str, read: Callable[[Request, RequestHeaders], Awaitable[Accepted]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            headers = request_headers(request)
            delivery_id = _delivery_id(headers)
            with job_fields(delivery_id=delivery_id):
                response = await answer_delivery(request, headers, door, delivery_id)
                INTAKE_DELIVERIES.labels(door, str(response.status_code)).inc()
                return response

        async def answer_delivery(
            request: Request, headers: RequestHeaders, door: str, delivery_id: str
        ) -> Response:
            try:
                accepted = await read(request, headers)
                response = await self._enqueue(door, accepted, delivery_id)
            except Refused as refused:
                response = JSONResponse({"error": refused.message}, status_code=refused.status)
            except InvalidEvent as exc:
                response = JSONResponse({"error": str(exc)}, status_code=400)
            except RedisUnavailable as exc:
                log.warning("%s: Redis unavailable (%s), answered 503", door, exc)
                response = JSONResponse(
                    {"error": "the queue is unavailable; send again later"},
                    status_code=503,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            if response.status_code >= 400:
                log.info("%s: answered %d", door, response.status_code)
            return response

        return answer

    async def _record_status(self, door: str, status: doors.TicketStatus) -> str | None:
        """Note a ticket solved (its links end later) or reopened; what to tell the sender."""
        assert self._client is not None
        after = self.config.privacy.revoke_after_solved_days
        if after is None:
            return None
        try:
            if status.solved:
                ends = time.time() + after * 86400
                await self._client.zadd(keys.SOLVED_TICKETS_KEY, {status.target: ends}, nx=True)
                at = datetime.fromtimestamp(ends, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
                told = f"{status.target} solved: its replay links end at {at}"
            else:
                await self._client.zrem(keys.SOLVED_TICKETS_KEY, status.target)
                told = f"{status.target} open: its replay links stay"
        except (aioredis.RedisError, OSError) as exc:
            raise RedisUnavailable(type(exc).__name__) from None
        log.info("%s: %s", door, told)
        return told

    async def _enqueue(self, door: str, accepted: Accepted, delivery_id: str) -> Response:
        told = None
        if accepted.status is not None:
            told = await self._record_status(door, accepted.status)
        if isinstance(accepted.reports, doors.Ignored):
            log.info("%s: ignored, %s", door, accepted.reports.reason)
            answer = {"ignored": accepted.reports.reason}
            if told:
                answer["ticket"] = told
            return JSONResponse(answer, status_code=200)
        assert self._writer is not None
        if self.config.posthog.require_distinct_id:
            for number, report in enumerate(accepted.reports, start=1):
                try:
                    require_distinct_id(report)
                except InvalidEvent as exc:
                    where = f"event {number}: " if len(accepted.reports) > 1 else ""
                    raise InvalidEvent(f"{where}{exc}") from None
        key = None if accepted.identity is None else dedupe_key(door, accepted.identity)
        queue = self.config.broker.queue
        messages = [encode_report(report, queue, delivery_id, door) for report in accepted.reports]
        written = await self._writer.write(Delivery(messages, body_digest(accepted.body), key))
        if written.different_body and door == "/v1/bug-reports":
            raise Refused(422, "this Idempotency-Key was already used for another body")
        log.info(
            "%s: %s %s",
            door,
            "resent, already enqueued" if written.duplicate else "enqueued",
            ", ".join(written.job_ids),
        )
        headers = {"Idempotent-Replayed": "true"} if written.duplicate else None
        body: dict[str, object] = {"job_ids": written.job_ids}
        if told:
            body["ticket"] = told
        return JSONResponse(body, status_code=202, headers=headers)

    @property
    def _host(self) -> str:
        return self.config.posthog.host

    async def _bug_reports(self, request: Request, headers: RequestHeaders) -> Accepted:
        tokens = self.config.intake.tokens
        if not tokens:
            raise DOOR_OFF
        if not signatures.token_matches(headers.get("authorization"), tokens):
            raise UNAUTHORIZED
        body = await _read_body(request, headers, MAX_BATCH_BYTES)
        _require_json(headers)
        data = doors.parse_json(body)
        if not isinstance(data, list) and len(body) > MAX_EVENT_BYTES:
            raise Refused(413, f"one event is at most {MAX_EVENT_BYTES // 1024} KiB")
        key = headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
            raise Refused(400, f"Idempotency-Key: must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters")
        return Accepted(doors.read_bug_reports(data, self._host), key, body)

    async def _zendesk(self, request: Request, headers: RequestHeaders) -> Accepted:
        secret = self.config.intake.zendesk_webhook_secret
        if secret is None:
            raise DOOR_OFF
        body = await _read_body(request, headers, MAX_EVENT_BYTES)
        now = datetime.now(timezone.utc)
        tolerance = self.config.intake.timestamp_tolerance_seconds
        if not signatures.zendesk_signature_ok(secret, body, headers, now, tolerance):
            raise UNAUTHORIZED
        _require_json(headers)
        report, status = doors.read_zendesk(doors.parse_json(body), self._host)
        identity = headers.get("x-zendesk-webhook-invocation-id") or headers.get(
            "x-zendesk-webhook-signature"
        )
        return Accepted(_listed(report), identity, body, status)

    async def _jira(self, request: Request, headers: RequestHeaders) -> Accepted:
        intake = self.config.intake
        secret, field = intake.jira_webhook_secret, intake.jira_session_field
        if secret is None or field is None:
            raise DOOR_OFF
        body = await _read_body(request, headers, MAX_BATCH_BYTES)
        signed = "x-hub-signature" in headers
        if not (
            signatures.jira_signature_ok(secret, body, headers)
            if signed
            else signatures.token_matches(headers.get("authorization"), [secret])
        ):
            raise UNAUTHORIZED
        _require_json(headers)
        report, status = doors.read_jira(doors.parse_json(body), field, self._host)
        identity = (
            headers.get("x-atlassian-webhook-identifier")
            or headers.get("x-hub-signature")
            or body_digest(body)
        )
        return Accepted(_listed(report), identity, body, status)

    async def _posthog(self, request: Request, headers: RequestHeaders) -> Accepted:
        intake = self.config.intake
        if intake.posthog_webhook_secret is None and not intake.tokens:
            raise DOOR_OFF
        body = await _read_body(request, headers, MAX_EVENT_BYTES)
        signed = "webhook-signature" in headers
        if signed and intake.posthog_webhook_secret is not None:
            ok = signatures.standard_webhook_ok(intake.posthog_webhook_secret, body, headers)
        else:
            ok = not signed and signatures.token_matches(
                headers.get("authorization"), intake.tokens
            )
        if not ok:
            raise UNAUTHORIZED
        _require_json(headers)
        report = doors.read_posthog(doors.parse_json(body), self._host)
        identity = headers.get("webhook-id") or body_digest(body)
        return Accepted(_listed(report), identity, body)

    # ----------------------------------------------------------------- health

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        assert self._client is not None
        try:
            await self._client.ping()
        except (aioredis.RedisError, OSError):
            return JSONResponse(
                {"status": "Redis unavailable"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ready"})

    async def _metrics(self, request: Request) -> Response:
        # Reading Redis's figures is a few quick blocking commands: off the event loop.
        text = await run_in_threadpool(exposition, self._figures, self.config.broker.queue)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())


def _delivery_id(headers: RequestHeaders) -> str:
    """The sender's id of this delivery, kept with the jobs it enqueues; else a new one."""
    for header in (
        "webhook-id",
        "x-atlassian-webhook-identifier",
        "x-zendesk-webhook-invocation-id",
        "idempotency-key",
    ):
        value = headers.get(header, "").strip()
        if value and len(value) <= 255 and value.isprintable():
            return value
    return uuid.uuid4().hex


def _listed(report: BugReport | doors.Ignored) -> list[BugReport] | doors.Ignored:
    return report if isinstance(report, doors.Ignored) else [report]


def create_application(config: Config, redis_url: str | None = None) -> Starlette:
    """The intake application for ``config``; Redis is connected when it starts."""
    return Intake(config, redis_url).application()


def application_from_environment() -> Starlette:
    """What each ``replay-attach serve`` process runs: the configuration it was started with."""
    from worker.config import load_config

    return create_application(load_config())
