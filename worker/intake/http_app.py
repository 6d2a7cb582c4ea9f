"""The intake's HTTP application: its doors, and what each one answers.

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
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker import keys
from worker.attach.events import BugReport, InvalidEvent, require_distinct_id
from worker.config import Config
from worker.errors import ReplayAttachError, StoreUnavailable
from worker.intake import doors, signatures
from worker.intake.deliveries import (
    Delivery,
    DeliveryWriter,
    QueueFull,
    body_digest,
    dedupe_key,
)
from worker.intake.openapi import openapi_document
from worker.intake.protocol import READ_DEADLINE_STATE
from worker.intake.rates import TokenRates
from worker.intake.ticket_states import TicketStates
from worker.jobs.producer import encode_report
from worker.jobs.redis_connection import resolve_redis_url, store_calls
from worker.logs import job_fields
from worker.metrics import INTAKE_DELIVERIES, INTAKE_REFUSED

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


class Refused(ReplayAttachError):
    """A delivery answered with an error status and a message that reveals no secret.

    With ``reason``, a refusal that protects the intake (counted by reason); with
    ``retry_after``, the seconds the sender should wait before sending again; ``detail``
    is logged by the server, never answered.
    """

    def __init__(
        self,
        status: int,
        message: str,
        reason: str | None = None,
        retry_after: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.retry_after = retry_after
        self.detail = detail


def unauthorized(why: str) -> Refused:
    """The one 401 answer, whatever failed; ``why`` goes to the server's log only."""
    return Refused(401, "missing or invalid credentials", detail=why)


DOOR_OFF = Refused(404, "not found")


@dataclass(frozen=True)
class Accepted:
    """What a door read from an authenticated delivery."""

    reports: list[BugReport] | doors.Ignored
    #: What identifies a resend of this delivery (none: nothing does); any one found is a resend.
    identities: tuple[str, ...]
    body: bytes
    #: A ticket solved or reopened, as the delivery tells.
    status: doors.TicketStatus | None = None
    #: The ``token_id`` of the intake token that sent it, if one did: its events count
    #: against that token's rate.
    token: str | None = None


#: A request's headers by lower-case name (the first of repeated ones, as Starlette's ``get``).
RequestHeaders = dict[str, str]


def request_headers(request: Request) -> RequestHeaders:
    """The headers once, as a dict: each door looks up several, some of them absent."""
    headers: RequestHeaders = {}
    for name, value in request.scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


BODIES_BUSY = Refused(
    503, "too many requests are sending their body; send again later", "bodies_busy", 1
)


async def _read_body(
    request: Request, headers: RequestHeaders, limit: int, slots: asyncio.Semaphore
) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes.

    A body that takes more than one read holds one of ``slots`` until it is
    complete (it is kept in memory meanwhile); when none is free it is refused
    with 503 at once. A body that arrives whole needs none, so slow senders
    holding every slot do not hold up deliveries that arrive promptly.
    Raises ``ClientDisconnect`` when the client leaves (or the read deadline
    closes the connection) before the body is complete.
    """
    declared = headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        raise Refused(413, f"the body is larger than {limit // 1024} KiB")
    chunks, size, holding = [], 0, False
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"the body is larger than {limit // 1024} KiB")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
            if not holding:
                if slots.locked():
                    raise BODIES_BUSY
                await slots.acquire()
                holding = True
    finally:
        if holding:
            slots.release()


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
        self._states: TicketStates | None = None
        self._rates: TokenRates | None = None
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
        queue_key, messages_key = keys.queue_keys(self.config.broker.queue)
        ttl = int(intake.deduplicate_hours * 3600)
        self._writer = DeliveryWriter(
            self._client, queue_key, messages_key, ttl, intake.max_queue_depth
        )
        self._states = TicketStates(self._client, ttl)
        self._rates = TokenRates(self._client, intake.events_per_minute_per_token)
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
                accepted = await read(request, headers)
                response = await self._enqueue(door, accepted, delivery_id)
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
            except StoreUnavailable as exc:
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

    async def _record_status(self, door: str, status: doors.TicketStatus) -> str | None:
        """Note a ticket solved (its links end later) or reopened, unless a later change of
        it came first; what to tell the sender."""
        assert self._states is not None
        after = self.config.privacy.revoke_after_solved_days
        if after is None:
            return None
        ends = time.time() + after * 86400
        with store_calls(self.config):
            applied = await self._states.apply(status, ends)
        if not applied.applied:
            told = f"{status.target} not changed: {applied.reason}"
        elif status.solved:
            at = datetime.fromtimestamp(ends, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
            told = f"{status.target} solved: its replay links end at {at}"
        else:
            told = f"{status.target} open: its replay links stay"
        log.info("%s: %s", door, told)
        return told

    async def _take_rate(self, token: str, events: int) -> None:
        """Count the events against the token's rate; 429 when it is over."""
        assert self._rates is not None
        with store_calls(self.config):
            wait = await self._rates.take(token, events)
        if wait is not None:
            per_minute = self.config.intake.events_per_minute_per_token
            raise Refused(
                429,
                f"this token may enqueue {per_minute} events per minute; send again later",
                "rate_limited",
                wait,
            )

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
        if accepted.token is not None:
            await self._take_rate(accepted.token, len(accepted.reports))
        dedupe_keys = tuple(dedupe_key(door, identity) for identity in accepted.identities)
        queue = self.config.broker.queue
        messages = [encode_report(report, queue, delivery_id, door) for report in accepted.reports]
        delivery = Delivery(messages, body_digest(accepted.body), dedupe_keys)
        try:
            with store_calls(self.config):
                written = await self._writer.write(delivery)
        except QueueFull:
            raise Refused(
                503,
                "the queue is full (the workers are behind); send again later",
                "queue_full",
                RETRY_AFTER_SECONDS,
            ) from None
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
        token = signatures.matching_token(headers.get("authorization"), tokens)
        if token is None:
            raise unauthorized(signatures.token_problem(headers.get("authorization"), tokens) or "")
        body = await _read_body(request, headers, MAX_BATCH_BYTES, self._body_slots)
        _require_json(headers)
        data = doors.parse_json(body)
        if not isinstance(data, list) and len(body) > MAX_EVENT_BYTES:
            raise Refused(413, f"one event is at most {MAX_EVENT_BYTES // 1024} KiB")
        key = headers.get("idempotency-key")
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
            raise Refused(400, f"Idempotency-Key: must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters")
        # Scoped to the token: another token's key names another delivery.
        identities = () if key is None else (f"{token}:{key}",)
        return Accepted(doors.read_bug_reports(data, self._host), identities, body, token=token)

    async def _zendesk(self, request: Request, headers: RequestHeaders) -> Accepted:
        secret = self.config.intake.zendesk_webhook_secret
        if secret is None:
            raise DOOR_OFF
        body = await _read_body(request, headers, MAX_EVENT_BYTES, self._body_slots)
        now = datetime.now(timezone.utc)
        tolerance = self.config.intake.timestamp_tolerance_seconds
        signed_at = signatures.zendesk_signed_at(headers)
        problem = signatures.zendesk_signature_problem(secret, body, headers, now, tolerance)
        if problem is not None or signed_at is None:
            raise unauthorized(problem or "no readable signature timestamp")
        _require_json(headers)
        signed_ms = int(signed_at.timestamp() * 1000)
        report, status = doors.read_zendesk(doors.parse_json(body), self._host, signed_ms)
        # The invocation id is not signed: a resend under a new one (or none) within the
        # timestamp window carries the same signature, which is remembered too.
        identities = tuple(
            value
            for value in (
                headers.get("x-zendesk-webhook-invocation-id"),
                headers.get("x-zendesk-webhook-signature", "").strip(),
            )
            if value
        )
        return Accepted(_listed(report), identities, body, status)

    async def _jira(self, request: Request, headers: RequestHeaders) -> Accepted:
        intake = self.config.intake
        secret, field = intake.jira_webhook_secret, intake.jira_session_field
        if secret is None or field is None:
            raise DOOR_OFF
        body = await _read_body(request, headers, MAX_BATCH_BYTES, self._body_slots)
        signed = "x-hub-signature" in headers
        problem = (
            signatures.jira_signature_problem(secret, body, headers)
            if signed
            else signatures.token_problem(headers.get("authorization"), [secret])
        )
        if problem is not None:
            raise unauthorized(problem)
        _require_json(headers)
        report, status = doors.read_jira(doors.parse_json(body), field, self._host)
        # Only the body is signed (X-Atlassian-Webhook-Identifier is not, and there is no
        # signed timestamp): a delivery is known by its body, which carries Jira's timestamp.
        return Accepted(_listed(report), (body_digest(body),), body, status)

    async def _posthog(self, request: Request, headers: RequestHeaders) -> Accepted:
        intake = self.config.intake
        if intake.posthog_webhook_secret is None and not intake.tokens:
            raise DOOR_OFF
        body = await _read_body(request, headers, MAX_EVENT_BYTES, self._body_slots)
        signed = "webhook-signature" in headers
        token = None
        if signed and intake.posthog_webhook_secret is not None:
            problem = signatures.standard_webhook_problem(
                intake.posthog_webhook_secret, body, headers
            )
        elif signed:
            problem = "a signed delivery, but POSTHOG_WEBHOOK_SECRET is not set"
        else:
            authorization = headers.get("authorization")
            token = signatures.matching_token(authorization, intake.tokens)
            # Why it failed is worked out only when it did.
            problem = None if token else signatures.token_problem(authorization, intake.tokens)
        if problem is not None:
            raise unauthorized(problem)
        _require_json(headers)
        report = doors.read_posthog(doors.parse_json(body), self._host)
        identity = headers.get("webhook-id") or body_digest(body)
        return Accepted(_listed(report), (identity,), body, token=token)

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
        if signatures.token_problem(request.headers.get("authorization"), tokens) is not None:
            return JSONResponse({"error": "missing or invalid credentials"}, status_code=401)
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
