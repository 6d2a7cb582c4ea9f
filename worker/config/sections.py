"""The configuration's own sections: the queue, retries, the worker, the intake, privacy, notes.

Each section refuses unknown keys and names a bad one in its message; the vendors'
sections are in ``worker.config.vendors``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from worker import keys


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(Section):
    #: A secret: a Redis URL may carry a password.
    redis_url: SecretStr | None = None
    data_dir: Path = Path("~/.local/share/replay-attach")
    queue: str = keys.QUEUE_NAME
    heartbeat_timeout_seconds: int = Field(default=15, ge=5, le=3600)
    maintenance_chance_per_million: int = Field(default=20_000, ge=1, le=1_000_000)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Messages name what is wrong, never the URL: it may hold a password.
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError("has no socket path; expected e.g. unix:///run/redis.sock")
            return value
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise ValueError(
                "has a malformed port (a password holding '/', '?', '#' or '@' must be "
                "percent-encoded, e.g. '/' as %2F)"
            ) from None
        if not parts.hostname:
            raise ValueError("has no host; expected e.g. redis://127.0.0.1:6379/0")
        return value


class HttpConfig(Section):
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    read_timeout_seconds: float = Field(default=30.0, gt=0, le=300)


class RetryConfig(Section):
    #: After this long since the first attempt a job is failed with its last reason.
    horizon_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    min_backoff_seconds: float = Field(default=15.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    #: A server's Retry-After beyond this is capped (a misbehaving header must
    #: not park a job for days); one below ``min_backoff_seconds`` is raised to it.
    max_retry_after_seconds: float = Field(default=3600.0, gt=0)
    #: A job is given up after this many attempts, even within the horizon: a
    #: server answering "retry now" again and again must not make a retry storm.
    max_attempts: int = Field(default=50, ge=1, le=100_000)

    @model_validator(mode="after")
    def _order(self) -> RetryConfig:
        if self.max_backoff_seconds < self.min_backoff_seconds:
            raise ValueError("max_backoff_seconds is below min_backoff_seconds")
        return self


class RateLimitsConfig(Section):
    """Requests per minute to each system, shared by every worker; None: no budget."""

    posthog_per_minute: int | None = Field(default=None, ge=1)
    zendesk_per_minute: int | None = Field(default=None, ge=1)
    jira_per_minute: int | None = Field(default=None, ge=1)


class FailedConfig(Section):
    retention_days: float = Field(default=7.0, gt=0)


class WorkerConfig(Section):
    processes: int = Field(default=2, ge=1, le=64)
    threads: int = Field(default=8, ge=1, le=256)
    #: An idle worker polls the bug-report queue at least this often (dramatiq's default
    #: backs off to 1000 ms, which adds up to a second of latency to a new event).
    idle_poll_ms: int = Field(default=100, ge=10, le=5000)
    #: A job still running after this long is interrupted and tried again later (a server
    #: dripping its answer a byte at a time defeats the read timeout of each request).
    job_time_limit_seconds: float = Field(default=600, gt=0, le=24 * 3600)


#: Shortest intake token or webhook secret a team may choose: a guessable one opens the door.
MIN_SECRET_CHARS = 16


def _long_enough(name: str, value: SecretStr | None) -> None:
    if value is not None and len(value.get_secret_value().strip()) < MIN_SECRET_CHARS:
        raise ValueError(f"{name} is shorter than {MIN_SECRET_CHARS} characters: too easy to guess")


class IntakeConfig(Section):
    """The doors of ``replay-attach serve``: each is off until its secret is set."""

    #: Bearer tokens of ``POST /v1/bug-reports`` (and of PostHog destinations that cannot sign).
    tokens: tuple[SecretStr, ...] = ()
    #: The signing secret of the Zendesk webhook (Admin Center, webhook, "Reveal secret").
    zendesk_webhook_secret: SecretStr | None = None
    #: The secret of the Jira webhook (HMAC), or the bearer token of a Jira Automation rule.
    jira_webhook_secret: SecretStr | None = None
    #: The Jira field holding the session id, e.g. ``customfield_10042``.
    jira_session_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    #: The ``whsec_...`` signing secret of the PostHog webhook destination.
    posthog_webhook_secret: SecretStr | None = None
    #: How long a delivery id or ``Idempotency-Key`` is remembered, so a resent one enqueues
    #: once; also how far back solving and reopening are ordered (an older change is dropped).
    deduplicate_hours: float = Field(default=24.0, ge=24.0, le=24 * 30)
    #: A signed delivery whose timestamp is further than this from now is refused (replays).
    timestamp_tolerance_seconds: int = Field(default=300, ge=30, le=3600)
    #: A request whose headers and body have not all arrived this long after it began (or
    #: after the connection opened) is answered 408 and closed.
    read_deadline_seconds: float = Field(default=10.0, ge=0.5, le=300)
    #: Bodies one server process reads at once over several network reads; one more is
    #: answered 503 (each may hold up to 1 MiB until it is complete).
    max_bodies_read_at_once: int = Field(default=64, ge=1, le=10_000)
    #: Events each intake token may send per minute (a list counts each event, a resend counts
    #: again), shared by every server process through Redis; more is answered 429. At least a
    #: full list.
    events_per_minute_per_token: int = Field(default=6000, ge=1000, le=10_000_000)
    #: From this many jobs waiting on the queue, every door answers 503 to deliveries that
    #: would enqueue more (the workers are far behind; Redis must not fill up).
    max_queue_depth: int = Field(default=100_000, ge=1000, le=100_000_000)

    @field_validator("tokens", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        # Comma-separated in one environment variable, so that tokens can be rotated.
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("posthog_webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value().strip()
        if not secret.startswith("whsec_"):
            raise ValueError("must be the destination's signing secret, starting with whsec_")
        try:
            decoded = base64.b64decode(secret.removeprefix("whsec_") + "==")
        except ValueError:
            decoded = b""
        if len(decoded) < MIN_SECRET_CHARS:
            raise ValueError("is not a whsec_ secret of at least 16 base64-encoded bytes")
        return value

    @model_validator(mode="after")
    def _strong_and_complete(self) -> IntakeConfig:
        for index, token in enumerate(self.tokens):
            _long_enough(f"intake.tokens: token {index + 1}", token)
        _long_enough("intake.zendesk_webhook_secret", self.zendesk_webhook_secret)
        _long_enough("intake.jira_webhook_secret", self.jira_webhook_secret)
        if (self.jira_webhook_secret is None) != (self.jira_session_field is None):
            raise ValueError(
                "the Jira door needs both intake.jira_webhook_secret and "
                "intake.jira_session_field (the field holding the session id)"
            )
        return self


def _never(value: object) -> object:
    # "never" (or "none") reads better than an empty value in a file.
    if isinstance(value, str) and value.strip().lower() in ("never", "none"):
        return None
    return value


class NotesConfig(Section):
    """What of the reporter's own input goes onto tickets."""

    #: The reporter's words in the note or comment.
    include_description: bool = True
    #: The page the reporter was on, in the note or comment.
    include_page_url: bool = True


class PrivacyConfig(Section):
    """When shared links end: anyone holding one can watch the recording."""

    #: Links older than this are revoked by the worker fleet; None: never.
    link_ttl_days: float | None = Field(default=90.0, gt=0)
    #: A solved or closed ticket's links are revoked this long after; 0: at once; None: never.
    revoke_after_solved_days: float | None = Field(default=7.0, ge=0)
    #: How often one worker process of the fleet looks for links due to end.
    check_every_seconds: float = Field(default=30.0, ge=0.2, le=600)
    #: Which events must have the ticket's requester as the recording's person:
    #: those of the webhook doors (their values are chosen by browsers and
    #: requesters), all of them, or none (``worker.attach.requester``).
    match_requester: Literal["webhooks", "all", "off"] = "webhooks"

    @field_validator("link_ttl_days", "revoke_after_solved_days", mode="before")
    @classmethod
    def _off(cls, value: object) -> object:
        return _never(value)
