"""Builds the vendor clients a worker thread uses, once per thread."""

from __future__ import annotations

import threading

import redis

from integrations.http import Throttle
from integrations.jira import JiraIssues
from integrations.posthog import PostHogSharing
from integrations.zendesk import ZendeskTickets
from worker.attach import Services
from worker.config import Config
from worker.ledger import Ledger
from worker.rate_limits import make_throttle


def build_services(config: Config, client: redis.Redis, *, budgets: bool = True) -> Services:
    """Clients for one thread; ``budgets=False`` skips the shared request budgets."""
    limits = config.rate_limits

    def throttle(system: str, per_minute: int | None) -> Throttle | None:
        return make_throttle(client, system, per_minute) if budgets else None

    timeouts = (config.http.connect_timeout_seconds, config.http.read_timeout_seconds)
    posthog = PostHogSharing(
        config.posthog.host,
        config.posthog.project_id,
        config.posthog.personal_api_key.get_secret_value(),
        timeouts,
        throttle("PostHog", limits.posthog_per_minute),
    )
    zendesk = None
    zc = config.zendesk
    if zc.url and zc.email and zc.api_token:
        zendesk = ZendeskTickets(
            zc.url,
            zc.email,
            zc.api_token.get_secret_value(),
            timeouts,
            throttle("Zendesk", limits.zendesk_per_minute),
        )
    jira = None
    jc = config.jira
    if jc.url:
        jira = JiraIssues(
            jc.url,
            timeouts,
            jc.effective_api_version,
            email=jc.email,
            api_token=jc.api_token.get_secret_value() if jc.api_token else None,
            personal_access_token=(
                jc.personal_access_token.get_secret_value() if jc.personal_access_token else None
            ),
            throttle=throttle("Jira", limits.jira_per_minute),
        )
    return Services(
        config=config,
        posthog=posthog,
        ledger=Ledger(client, config.posthog.project_id),
        zendesk=zendesk,
        jira=jira,
    )


class ThreadServices:
    """One ``Services`` per thread, with its own Redis connection and HTTP connections."""

    def __init__(self, config: Config, client: redis.Redis) -> None:
        self._config = config
        self._client = client
        self._local = threading.local()

    def get(self) -> Services:
        services: Services | None = getattr(self._local, "services", None)
        if services is None:
            # The thread keeps one connection of the pool for itself: taking a
            # connection from the shared pool and handing it back costs about a
            # quarter of redis-py's CPU per command (40 us on the development
            # machine), and a job makes two round trips in its own thread.
            own = redis.Redis(
                connection_pool=self._client.connection_pool, single_connection_client=True
            )
            services = build_services(self._config, own)
            self._local.services = services
        return services
