"""The clients the attach use case works with, built once per worker thread, not per job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from integrations.http import Throttle
from integrations.jira import JiraIssues
from integrations.posthog import PostHogSharing
from integrations.zendesk import ZendeskTickets
from worker.attach.ledger import Ledger
from worker.attach.links import Links
from worker.config import POSTHOG_CREDENTIALS, Config

#: Makes the request budget of one system (its name, its requests per minute), or None.
ThrottleFactory = Callable[[str, int | None], Throttle | None]


@dataclass
class Services:
    """One thread's clients: PostHog, the ledger, and each configured ticket system."""

    config: Config
    posthog: PostHogSharing
    ledger: Ledger
    links: Links
    zendesk: ZendeskTickets | None = None
    jira: JiraIssues | None = None


def build_services(
    config: Config, client: redis.Redis, throttle: ThrottleFactory | None = None
) -> Services:
    """Clients for one thread; without ``throttle``, no request budgets are asked."""
    config.require(*POSTHOG_CREDENTIALS)
    limits = config.rate_limits

    def budget(system: str, per_minute: int | None) -> Throttle | None:
        return throttle(system, per_minute) if throttle is not None else None

    timeouts = (config.http.connect_timeout_seconds, config.http.read_timeout_seconds)
    posthog = PostHogSharing(
        config.posthog.host,
        config.posthog.project,
        config.posthog.api_key.get_secret_value(),
        timeouts,
        budget("PostHog", limits.posthog_per_minute),
        share_settings=config.posthog.share_settings,
    )
    zendesk = None
    zc = config.zendesk
    if zc.url and zc.email and zc.api_token:
        zendesk = ZendeskTickets(
            zc.url,
            zc.email,
            zc.api_token.get_secret_value(),
            timeouts,
            budget("Zendesk", limits.zendesk_per_minute),
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
            throttle=budget("Jira", limits.jira_per_minute),
        )
    return Services(
        config=config,
        posthog=posthog,
        ledger=Ledger(client, config.posthog.project),
        links=Links(client, config.posthog.project),
        zendesk=zendesk,
        jira=jira,
    )
