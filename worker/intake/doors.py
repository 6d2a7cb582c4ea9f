"""The intake's doors: each sender's path, in the order they are listed and routed."""

from __future__ import annotations

from worker.config import Config
from worker.intake.sender import Sender
from worker.intake.senders import bug_reports, jira, posthog, zendesk

SENDERS: tuple[Sender, ...] = (bug_reports.SENDER, zendesk.SENDER, jira.SENDER, posthog.SENDER)

#: The headers that name a delivery, looked for in this order whatever the door.
DELIVERY_ID_HEADERS = tuple(
    sender.delivery_id_header
    for sender in (posthog.SENDER, jira.SENDER, zendesk.SENDER, bug_reports.SENDER)
)


def doors_on(config: Config) -> dict[str, bool]:
    """Each door's path, and whether its secret is configured."""
    return {sender.door: sender.is_on(config) for sender in SENDERS}
