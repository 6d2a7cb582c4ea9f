"""The whole configuration: every section, and what a command may require of it."""

from __future__ import annotations

from pydantic import (
    PrivateAttr,
    model_validator,
)

from worker.config.errors import ConfigError, origin_hint
from worker.config.sections import (
    BrokerConfig,
    FailedConfig,
    HttpConfig,
    IntakeConfig,
    NotesConfig,
    PrivacyConfig,
    RateLimitsConfig,
    RetryConfig,
    Section,
    WorkerConfig,
)
from worker.config.vendors import JiraConfig, PostHogConfig, ZendeskConfig

#: What talking to PostHog needs (the worker, ``check``, ``revoke``).
POSTHOG_CREDENTIALS = ("posthog.project_id", "posthog.personal_api_key")
#: What reading the ledger and the links needs: their Redis keys hold the project id.
POSTHOG_PROJECT = ("posthog.project_id",)


class Config(Section):
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
            lines = [f"  {key}{origin_hint(self._origins, key)}: is required" for key in missing]
            raise ConfigError(f"invalid configuration in {self._source}:\n" + "\n".join(lines))


def _lookup(config: Config, dotted: str) -> object:
    value: object = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
