"""The intake's doors: each sender's path, in the order they are listed and routed."""

from __future__ import annotations

from worker.config import Config
from worker.intake.sender import Sender
from worker.intake.senders import bug_reports, jira, posthog, zendesk

SENDERS: tuple[Sender, ...] = (bug_reports.SENDER, zendesk.SENDER, jira.SENDER, posthog.SENDER)


def doors_on(config: Config) -> dict[str, bool]:
    """Each door's path, and whether its secret is configured."""
    return {sender.door: sender.is_on(config) for sender in SENDERS}
