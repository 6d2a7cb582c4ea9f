"""The vendors' sections: PostHog, Zendesk and Jira, their base URLs and credentials."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from worker.config.errors import ConfigError
from worker.config.sections import Section


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


class PostHogConfig(Section):
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


class ZendeskConfig(Section):
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


class JiraVisibility(Section):
    type: Literal["role", "group"]
    value: str


class JiraConfig(Section):
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
