"""The attach use case: one bug report's replay onto one ticket, exactly once.

Never posting twice is decided here, on the marks the ledger keeps
(``worker.attach.ledger``): a step already ``done`` is skipped; a step safe to
repeat (tag, remote link) is simply redone; a write not safe to repeat (Zendesk
note, Jira comment) is marked ``pending`` before it is sent, and one found
``pending`` (an earlier attempt got no answer, or its worker was killed) is
first looked for on the ticket. Knows nothing of dramatiq; raises the
integrations' ``RetryLater`` / ``PermanentFailure``.

Nothing is shared before the recording is read: a session PostHog has no
recording of is looked for again until ``posthog.recording_wait_minutes`` after
the report, then gets a note saying so (or a failed job); a recording of
another person than the event's ``distinct_id`` is never shared, nor, when the
event's door asks for it (``worker.attach.requester``), one of another person
than the ticket's requester. A revoked link never answers again: a session
whose link was revoked is shared again only under a fresh token.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from integrations.errors import PermanentFailure, RetryLater, SharingDisabled
from integrations.posthog_answers import embed_link, token_of
from worker.attach import rendering, requester
from worker.attach.events import BugReport
from worker.attach.leases import LockBusy
from worker.attach.ledger import Attachment, Ledger, StepState
from worker.attach.recording import RecordingFacts, StartPoint, belongs_to_reporter, start_point
from worker.attach.rendering import Replay
from worker.attach.requester import Refusal, RequesterCheck
from worker.attach.services import Services
from worker.attach.steps import Step, plan_missing_steps, plan_steps
from worker.errors import AttachLater, AttachRefused

log = logging.getLogger(__name__)

#: Seconds before retrying when another worker holds this (ticket, session).
BUSY_RETRY_SECONDS = 2.0


@dataclass
class AttachResult:
    #: The embed link on the ticket (None when PostHog has no recording).
    link: str | None
    #: Steps that wrote to the ticket during this call.
    written: list[str] = field(default_factory=list)
    #: True when everything had already landed before this call.
    already_attached: bool = False
    #: True when the ticket was told that PostHog has no recording of the session.
    no_recording: bool = False
    #: Set when the requester rule refused the event: nothing was shared or posted.
    refused: Refusal | None = None
    #: True when the link is the session's private page in PostHog: the organisation
    #: switched public sharing off.
    private: bool = False


def attach_replay(
    event: BugReport,
    services: Services,
    first_attempt_at: float | None = None,
    check: RequesterCheck = RequesterCheck.OFF,
) -> AttachResult:
    """Make the replay link appear on the event's ticket; safe to call any number of times.

    ``first_attempt_at`` (unix time) starts the wait for a recording when the
    event has no ``reported_at``; ``check`` says how much of the requester rule
    applies to the event (by where it came from).
    """
    steps = plan_steps(event, services)
    # Writes not safe to repeat are marked "pending" as the attachment opens,
    # in the same round trip: they must be known to be in flight before they are sent.
    reserve = tuple(step.name for step in steps if not step.repeatable)
    try:
        # A duplicate arriving while the original is in flight finds the lock
        # busy and comes back in a moment, when it will find everything done.
        with services.ledger.attachment(event.target, event.session_id, reserve) as attachment:
            return _attach(event, services, steps, attachment, first_attempt_at, check)
    except LockBusy:
        raise AttachLater(
            f"another worker is attaching session {event.session_id} to {event.target_label}",
            retry_after=BUSY_RETRY_SECONDS,
        ) from None


def _attach(
    event: BugReport,
    services: Services,
    steps: list[Step],
    attachment: Attachment,
    first_attempt_at: float | None,
    check: RequesterCheck,
) -> AttachResult:
    record = attachment.record
    link = record.get("link")
    if link and services.links.is_revoked(event.session_id, token_of(link)):
        # Revoked since it was posted: this report gets a new link and a new note.
        record, link = {}, None
    if link and all(Ledger.state(record, step.name) is StepState.DONE for step in steps):
        attachment.save({}, finished=True)
        return AttachResult(link=link, already_attached=True)
    # Ledger changes not yet written: they go out in one round trip when a
    # step fails and at the end. Losing them to a crash only means minting the
    # same link again, redoing a repeatable step, or reading the ticket before
    # a write that is still marked "pending".
    unsaved: dict[str, str] = {}
    if link:
        facts = RecordingFacts.from_ledger(record.get("recording"))
        replay = Replay(link, facts, start_point(event, facts), private="private" in record)
    else:
        recording = services.posthog.read_recording(event.session_id)
        if recording is None:
            return _no_recording(event, services, attachment, first_attempt_at, check)
        if not belongs_to_reporter(event, recording, services.posthog.find_person):
            raise AttachRefused(
                f"session {event.session_id} was recorded for another person than the "
                "reporter (the event's distinct_id): nothing was shared",
            )
        if check is not RequesterCheck.OFF:
            refused = requester.refusal(event, recording.person, services)
            if refused is not None:
                return AttachResult(link=None, refused=refused)
        facts = RecordingFacts.of(recording)
        start = start_point(event, facts)
        try:
            token = attachment.mint(lambda revoked: _share(event.session_id, revoked, services))
        except SharingDisabled as exc:
            # No public link can exist: the agents get the session's page in PostHog instead,
            # rather than a job retried for a day.
            log.warning("%s", exc.reason)
            replay = Replay(_private_page(event, services, start), facts, start, private=True)
            unsaved["private"] = "1"
        else:
            link = embed_link(services.config.posthog.host, token, start.seconds if start else None)
            # Known before any ticket shows it: no link can escape its end.
            if not services.links.shared(event.session_id, token, event.target, link):
                # PostHog brought a revoked token back after all: end it again at once.
                services.posthog.revoke_sharing(event.session_id, token)
                raise PermanentFailure(
                    "PostHog",
                    f"PostHog shared session {event.session_id} again under its revoked link, "
                    "so sharing was switched off again and nothing was posted",
                )
            replay = Replay(link, facts, start)
        unsaved["link"], unsaved["recording"] = replay.link, facts.to_ledger()
    result = AttachResult(link=replay.link, private=replay.private)
    _write_steps(event, steps, record, attachment, replay, unsaved, result)
    return result


def _private_page(event: BugReport, services: Services, start: StartPoint | None) -> str:
    """The session's page in PostHog's app (a login needed), at the report's moment."""
    posthog = services.config.posthog
    page = rendering.posthog_session_page(posthog.host, posthog.project, event.session_id)
    return f"{page}?t={start.seconds}" if start else page


def _share(session_id: str, revoked: bool, services: Services) -> str:
    """The session's live token; under the mint lock, which a revocation also holds.

    A ``revoked`` session is shared again only under a fresh token: its token is
    rotated first, and a PostHog that cannot rotate (no ``sharing/refresh/``,
    where re-enabling brings the old token back) is not asked to share it.
    """
    if revoked and not services.posthog.rotate_token(session_id):
        raise PermanentFailure(
            "PostHog",
            f"session {session_id}'s link was revoked, and this PostHog cannot issue a fresh "
            "token (no sharing/refresh/): sharing it again would bring the revoked link back, "
            "so nothing was shared",
        )
    return services.posthog.share_recording(session_id)


def _no_recording(
    event: BugReport,
    services: Services,
    attachment: Attachment,
    first_attempt_at: float | None,
    check: RequesterCheck,
) -> AttachResult:
    """PostHog has no recording: look again later, or, after the wait, say so on the ticket."""
    config = services.config.posthog
    since = event.reported_at.timestamp() if event.reported_at else first_attempt_at or time.time()
    deadline = since + config.recording_wait_minutes * 60
    looked_until = datetime.fromtimestamp(deadline, timezone.utc)
    if time.time() < deadline:
        raise RetryLater(
            "PostHog",
            f"PostHog has no recording of session {event.session_id} yet (looking again until "
            f"{looked_until:%Y-%m-%d %H:%M:%S} UTC)",
            retry_by=deadline,
        )
    if config.on_missing_recording == "fail":
        raise PermanentFailure(
            "PostHog",
            f"PostHog has no recording of session {event.session_id} "
            f"(looked for until {looked_until:%Y-%m-%d %H:%M:%S} UTC)",
        )
    if check is RequesterCheck.STRICT:
        # The ticket number came from the sender: say so only on the event's person's ticket.
        refused = requester.refusal(event, requester.event_person(event, services), services)
        if refused is not None:
            return AttachResult(link=None, refused=refused)
    result = AttachResult(link=None, no_recording=True)
    steps = plan_missing_steps(event, services, looked_until)
    _write_steps(event, steps, attachment.record, attachment, Replay(link=""), {}, result)
    result.already_attached = not result.written
    return result


def _write_steps(
    event: BugReport,
    steps: list[Step],
    record: dict[str, str],
    attachment: Attachment,
    replay: Replay,
    unsaved: dict[str, str],
    result: AttachResult,
) -> None:
    """Write each step not done yet, keeping the ledger's marks; the last save ends the attempt."""
    for step in steps:
        state = Ledger.state(record, step.name)
        if state is StepState.DONE:
            continue
        if step.already_there is not None:
            if state is StepState.PENDING and step.already_there(replay):
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
            step.write(replay)
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
