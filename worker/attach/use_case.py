"""The attach use case: one bug report's replay onto one ticket, exactly once.

Never posting twice is decided here, on the marks the ledger keeps
(``worker.attach.ledger``): a step already ``done`` is skipped; a step safe to
repeat (tag, remote link) is simply redone; a write not safe to repeat (Zendesk
note, Jira comment) is marked ``pending`` before it is sent, and one found
``pending`` (an earlier attempt got no answer, or its worker was killed) is
first looked for on the ticket. Knows nothing of dramatiq; raises the
integrations' ``RetryLater`` / ``PermanentFailure``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from integrations.errors import PermanentFailure, RetryLater
from integrations.posthog import embed_link
from worker.attach.events import BugReport
from worker.attach.leases import LockBusy
from worker.attach.ledger import Attachment, Ledger, StepState
from worker.attach.services import Services
from worker.attach.steps import Step, plan_steps

log = logging.getLogger(__name__)

#: Seconds before retrying when another worker holds this (ticket, session).
BUSY_RETRY_SECONDS = 2.0


@dataclass
class AttachResult:
    link: str
    #: Steps that wrote to the ticket during this call.
    written: list[str] = field(default_factory=list)
    #: True when everything had already landed before this call.
    already_attached: bool = False


def attach_replay(event: BugReport, services: Services) -> AttachResult:
    """Make the replay link appear on the event's ticket; safe to call any number of times."""
    steps = plan_steps(event, services)
    # Writes not safe to repeat are marked "pending" as the attachment opens,
    # in the same round trip: they must be known to be in flight before they are sent.
    reserve = tuple(step.name for step in steps if not step.repeatable)
    try:
        # A duplicate arriving while the original is in flight finds the lock
        # busy and comes back in a moment, when it will find everything done.
        with services.ledger.attachment(event.target, event.session_id, reserve) as attachment:
            return _attach(event, services, steps, attachment)
    except LockBusy:
        raise RetryLater(
            "replay-attach",
            f"another worker is attaching session {event.session_id} to {event.target_label}",
            retry_after=BUSY_RETRY_SECONDS,
        ) from None


def _attach(
    event: BugReport, services: Services, steps: list[Step], attachment: Attachment
) -> AttachResult:
    record = attachment.record
    link = record.get("link")
    if link and all(Ledger.state(record, step.name) is StepState.DONE for step in steps):
        attachment.save({}, finished=True)
        return AttachResult(link=link, already_attached=True)
    # Ledger changes not yet written: they go out in one round trip when a
    # step fails and at the end. Losing them to a crash only means minting the
    # same link again, redoing a repeatable step, or reading the ticket before
    # a write that is still marked "pending".
    unsaved: dict[str, str] = {}
    if not link:
        token = attachment.mint(lambda: services.posthog.share_recording(event.session_id))
        link = embed_link(services.config.posthog.host, token, event.replay_seconds)
        unsaved["link"] = link
    result = AttachResult(link=link)
    for step in steps:
        state = Ledger.state(record, step.name)
        if state is StepState.DONE:
            continue
        if step.already_there is not None:
            if state is StepState.PENDING and step.already_there(link):
                log.info("%s for %s was already on %s", step.name, event.session_id, event.target)
                unsaved[step.name] = Ledger.done()
                continue
            if state is StepState.NOT_STARTED and step.name not in attachment.reserved:
                unsaved[step.name] = Ledger.pending()
                attachment.save(unsaved)
                unsaved = {}
            attachment.attempt(step.name)
        # A mint lock still held goes out with the next save, usually the last.
        try:
            step.write(link)
        except RetryLater as exc:
            # A write that may have landed keeps its "pending" mark: the next
            # attempt reads the ticket before writing again.
            uncertain = exc.maybe_applied and not step.repeatable
            attachment.save(unsaved, clear=() if uncertain else (step.name,), finished=True)
            raise
        except PermanentFailure:
            attachment.save(unsaved, clear=(step.name,), finished=True)
            raise
        unsaved[step.name] = Ledger.done()
        result.written.append(step.name)
    attachment.save(unsaved, finished=True)
    return result
