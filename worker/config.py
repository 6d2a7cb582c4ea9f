"""Configuration: ``config.yaml`` with ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}``.

As in a shell, ``${NAME:-default}`` takes the default when ``NAME`` is unset or
empty, ``${NAME-default}`` only when it is unset: an empty ``NAME`` then turns
the setting off (a time to live of "never", say).

``load_config()`` reads the file named by ``REPLAY_ATTACH_CONFIG`` (default: the
``config.yaml`` shipped inside the package), substitutes environment variables,
validates everything and returns a frozen ``Config``. Any problem raises one
``ConfigError`` whose message names each bad key (and the environment variable
it came from) without ever echoing a value: values may be secrets.

PostHog's project id and personal API key are optional at load time, so that
the internet-facing ``serve`` and the producers start without any vendor
credential; the commands that talk to PostHog ask for them with
``Config.require()``, which fails with the same kind of message.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from worker import keys

#: Environment variable naming the configuration file.
CONFIG_ENV = "REPLAY_ATTACH_CONFIG"

#: The shipped, commented default configuration: package data in a wheel; in the source tree a
#: symbolic link to the repository's top-level ``config.yaml``, the one copy that is edited.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "config.yaml"

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}")
#: A dotted configuration key named in a problem's text (``zendesk.email``).
_KEY_IN_TEXT = re.compile(r"\b([a-z_]+\.[a-z_]+)\b")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Unclosed(Exception):
    """A value with a ``${`` that no ``}`` closes (it would be taken literally)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _check_base_url(value: str | None, example: str, *, with_path: bool = False) -> str | None:
    """Accept ``scheme://host[:port]`` (and a path, ``with_path``): the clients append the
    API paths."""
    if value is None:
        return None
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"has a malformed port; expected a URL such as {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL such as {example}")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; use the separate email/token keys")
    if parts.query or parts.fragment:
        raise ValueError(f"must be a base URL with no query or fragment, such as {example}")
    if parts.path not in ("", "/") and not with_path:
        raise ValueError(f"must be a bare base URL with no path or query, such as {example}")
    return value.rstrip("/")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Section):
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_clear_text(section: str, key: str, url: str | None, allowed: bool) -> None:
    """Credentials go with every request: ``http://`` only to this machine, or when told."""
    parts = urlsplit(url or "")
    if parts.scheme == "http" and not allowed and not _is_loopback(parts.hostname or ""):
        raise ValueError(
            f"{section}.{key} is http://, which would send the credentials in clear text: "
            f"use https://, or set {section}.allow_insecure_http: true if a trusted proxy "
            "adds TLS (loopback hosts such as 127.0.0.1 need neither)"
        )


#: The keys of PostHog's sharing ``settings`` (it drops any other).
SHARE_SETTINGS = (
    "whitelabel",
    "noHeader",
    "showInspector",
    "legend",
    "detailed",
    "hideExtraDetails",
)


class PostHogConfig(_Section):
    host: str = "https://us.posthog.com"
    #: Required by the commands that talk to PostHog or key its links (``Config.require``).
    project_id: int | None = Field(default=None, gt=0)
    personal_api_key: SecretStr | None = None
    #: Allows an ``http://`` host other than a loopback address (credentials in clear text).
    allow_insecure_http: bool = False
    #: How long after the report a missing recording is looked for again (ingestion lags).
    recording_wait_minutes: float = Field(default=30.0, ge=0, le=7 * 24 * 60)
    #: What a report whose session has no recording gets after the wait: a note saying
    #: so on the ticket, or a failed job.
    on_missing_recording: Literal["note", "fail"] = "note"
    #: Refuse events without the reporter's ``distinct_id`` (intakes open to the public).
    require_distinct_id: bool = False
    #: How the shared page shows the recording (PostHog's sharing ``settings``).
    share_settings: dict[str, bool] = Field(default_factory=dict)

    @field_validator("share_settings")
    @classmethod
    def _known_settings(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(SHARE_SETTINGS))
        if unknown:
            raise ValueError(
                f"has unknown keys {', '.join(unknown)}; PostHog knows {', '.join(SHARE_SETTINGS)}"
            )
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        checked = _check_base_url(value, "https://us.posthog.com")
        assert checked is not None
        if urlsplit(checked).hostname and ".i.posthog.com" in (urlsplit(checked).hostname or ""):
            raise ValueError(
                "is an ingestion host; use the app host such as https://us.posthog.com"
            )
        return checked

    @field_validator("personal_api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @property
    def project(self) -> int:
        """``project_id``, which ``Config.require`` has checked before anything runs."""
        if self.project_id is None:
            raise ConfigError("posthog.project_id is required")
        return self.project_id

    @property
    def api_key(self) -> SecretStr:
        """``personal_api_key``, which ``Config.require`` has checked before anything runs."""
        if self.personal_api_key is None:
            raise ConfigError("posthog.personal_api_key is required")
        return self.personal_api_key

    @model_validator(mode="after")
    def _over_tls(self) -> PostHogConfig:
        # Without a key (serve, the producers) nothing secret is sent to the host.
        if self.personal_api_key is not None:
            _refuse_clear_text("posthog", "host", self.host, self.allow_insecure_http)
        return self


class ZendeskConfig(_Section):
    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    #: Off by default: anyone holding the link can watch the recording.
    public_comment: bool = False
    #: Added to a ticket that received a replay link.
    tag: str | None = "posthog_replay"
    #: Added to a ticket whose replay could not be attached for good.
    failed_tag: str | None = "posthog_replay_failed"
    #: Added with the note saying that PostHog has no recording of the session.
    missing_tag: str | None = "posthog_replay_missing"
    #: Allows an ``http://`` url other than a loopback address (credentials in clear text).
    allow_insecure_http: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _check_base_url(value, "https://acme.zendesk.com")

    @model_validator(mode="after")
    def _complete_or_absent(self) -> ZendeskConfig:
        given = {"url": self.url, "email": self.email, "api_token": self.api_token}
        missing = [name for name, value in given.items() if value is None]
        if 0 < len(missing) < len(given):
            raise ValueError(
                "is partly configured: also set " + ", ".join(f"zendesk.{m}" for m in missing)
            )
        _refuse_clear_text("zendesk", "url", self.url, self.allow_insecure_http)
        return self


class JiraVisibility(_Section):
    type: Literal["role", "group"]
    value: str


class JiraConfig(_Section):
    url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    #: Jira Data Center / Server: a personal access token (sent as Bearer) instead
    #: of email + API token.
    personal_access_token: SecretStr | None = None
    #: 3 (Cloud, Atlassian Document Format comments) or 2 (Cloud or Data Center,
    #: wiki markup). Default: 3 with email + token, 2 with a personal access token.
    api_version: Literal[2, 3] | None = None
    #: A remote link is seen by everyone who can see the issue. Unset: on, unless
    #: ``comment_visibility`` restricts the comment (then only when set to true).
    remote_link: bool | None = None
    comment: bool = True
    comment_visibility: JiraVisibility | None = None
    #: Allows an ``http://`` url other than a loopback address (credentials in clear text).
    allow_insecure_http: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # Jira Data Center often lives under a path (https://intranet.example.com/jira).
        return _check_base_url(value, "https://acme.atlassian.net", with_path=True)

    @field_validator("api_version", mode="before")
    @classmethod
    def _version_from_env(cls, value: object) -> object:
        # Environment variables are strings; Literal[2, 3] does not coerce them.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> JiraConfig:
        cloud = self.email is not None or self.api_token is not None
        if cloud and self.personal_access_token is not None:
            raise ValueError(
                "has both email/api_token (Cloud) and personal_access_token (Data Center): "
                "set only one"
            )
        if cloud and (self.email is None or self.api_token is None):
            raise ValueError("needs both jira.email and jira.api_token")
        has_credentials = cloud or self.personal_access_token is not None
        if has_credentials and self.url is None:
            raise ValueError("has credentials but no jira.url")
        if self.url is not None and not has_credentials:
            raise ValueError(
                "has a url but no credentials: set jira.email and jira.api_token, "
                "or jira.personal_access_token"
            )
        if self.personal_access_token is not None and self.api_version == 3:
            raise ValueError("api_version 3 is Cloud only; Data Center tokens use api_version 2")
        if not (self.effective_remote_link or self.comment) and self.url is not None:
            raise ValueError("has both remote_link and comment off: nothing would be posted")
        _refuse_clear_text("jira", "url", self.url, self.allow_insecure_http)
        return self

    @property
    def effective_remote_link(self) -> bool:
        if self.remote_link is not None:
            return self.remote_link
        return self.comment_visibility is None

    @property
    def effective_api_version(self) -> Literal[2, 3]:
        if self.api_version is not None:
            return self.api_version
        return 2 if self.personal_access_token is not None else 3


class HttpConfig(_Section):
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    read_timeout_seconds: float = Field(default=30.0, gt=0, le=300)


class RetryConfig(_Section):
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


class RateLimitsConfig(_Section):
    """Requests per minute to each system, shared by every worker; None: no budget."""

    posthog_per_minute: int | None = Field(default=None, ge=1)
    zendesk_per_minute: int | None = Field(default=None, ge=1)
    jira_per_minute: int | None = Field(default=None, ge=1)


class FailedConfig(_Section):
    retention_days: float = Field(default=7.0, gt=0)


class WorkerConfig(_Section):
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


class IntakeConfig(_Section):
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


class NotesConfig(_Section):
    """What of the reporter's own input goes onto tickets."""

    #: The reporter's words in the note or comment.
    include_description: bool = True
    #: The page the reporter was on, in the note or comment.
    include_page_url: bool = True


class PrivacyConfig(_Section):
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


#: What talking to PostHog needs (the worker, ``check``, ``revoke``).
POSTHOG_CREDENTIALS = ("posthog.project_id", "posthog.personal_api_key")
#: What reading the ledger and the links needs: their Redis keys hold the project id.
POSTHOG_PROJECT = ("posthog.project_id",)


class Config(_Section):
    broker: BrokerConfig = BrokerConfig()
    posthog: PostHogConfig = PostHogConfig()
    zendesk: ZendeskConfig = ZendeskConfig()
    jira: JiraConfig = JiraConfig()
    http: HttpConfig = HttpConfig()
    retry: RetryConfig = RetryConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    failed: FailedConfig = FailedConfig()
    worker: WorkerConfig = WorkerConfig()
    intake: IntakeConfig = IntakeConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    notes: NotesConfig = NotesConfig()

    @model_validator(mode="after")
    def _wait_within_horizon(self) -> Config:
        if self.posthog.recording_wait_minutes * 60 >= self.retry.horizon_hours * 3600:
            raise ValueError(
                "posthog.recording_wait_minutes must be shorter than retry.horizon_hours: "
                "a job still waiting for its recording would be given up first"
            )
        return self

    #: Where each key's value came from (``${NAME}``) and the file, for ``require``'s message.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _source: str = PrivateAttr(default="the configuration")

    def require(self, *keys: str) -> None:
        """Raise ``ConfigError`` naming each of the dotted ``keys`` that is unset."""
        missing = [key for key in keys if _lookup(self, key) is None]
        if missing:
            lines = [f"  {key}{_hint(self._origins, key)}: is required" for key in missing]
            raise ConfigError(f"invalid configuration in {self._source}:\n" + "\n".join(lines))


def _lookup(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _hint(origins: dict[str, str], key: str) -> str:
    origin = origins.get(key)
    return f" (from ${{{origin}}})" if origin else ""


def _substitute(
    node: Any, env: Mapping[str, str], path: tuple[str, ...], origins: dict[str, str]
) -> Any:
    """Replace ``${NAME}`` references; a value that ends up empty counts as unset."""
    if isinstance(node, dict):
        return {
            key: _substitute(value, env, (*path, str(key)), origins) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_substitute(value, env, (*path, str(i)), origins) for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    if "${" in _REFERENCE.sub("", node):
        raise _Unclosed(".".join(path))
    names = [match.group(1) for match in _REFERENCE.finditer(node)]
    if names:
        origins[".".join(path)] = ", ".join(names)

    def replace(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if match.group(2) == "" and match.group(3) is not None:  # ${NAME-default}
            return match.group(3) if value is None else value
        return value if value else (match.group(3) or "")

    result = _REFERENCE.sub(replace, node)
    return None if result.strip() == "" else result


def _describe(error: ValidationError, origins: dict[str, str], source: str) -> str:
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        key = key or "(top level)"
        if item["type"] == "missing" or item.get("input", "") is None:
            problem = "is required"
        elif item["type"] == "extra_forbidden":
            problem = "is not a known setting"
        else:
            problem = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {key}{_hint(origins, key)}: {_name_variables(problem, origins)}")
    return f"invalid configuration in {source}:\n" + "\n".join(lines)


def _name_variables(problem: str, origins: dict[str, str]) -> str:
    """``problem`` with each key it names followed by the variable that sets it."""

    def named(match: re.Match[str]) -> str:
        origin = origins.get(match.group(1))
        return f"{match.group(1)} ({origin})" if origin else match.group(1)

    return _KEY_IN_TEXT.sub(named, problem)


#: libyaml's safe loader when PyYAML was built with it (its wheels are): the same
#: documents and errors, parsed in C, which every short-lived command pays for.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _empty_sections_to_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    # A YAML section whose every key is commented out parses as None.
    return {key: ({} if value is None else value) for key, value in raw.items()}


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, substitute and validate the configuration; raise ``ConfigError``."""
    env = os.environ if env is None else env
    chosen = Path(path or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {chosen}: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader, C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"configuration file {chosen} is not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {chosen} must be a mapping of sections")
    origins: dict[str, str] = {}
    try:
        substituted = _empty_sections_to_defaults(_substitute(raw, env, (), origins))
    except _Unclosed as exc:
        raise ConfigError(
            f"invalid configuration in {chosen}:\n  {exc.key}: has a ${{ that no }} closes "
            "(write ${NAME}, ${NAME:-default} or ${NAME-default})"
        ) from None
    try:
        config = Config.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins, str(chosen))) from None
    config._origins = origins
    config._source = str(chosen)
    return config
