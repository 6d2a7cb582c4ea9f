"""The attach use case: one bug report's replay onto one ticket, exactly once.

Every step is safe to run again: a finished step is skipped, an idempotent
step (tag, remote link) is simply redone, and a non-idempotent write (Zendesk
note, Jira comment) whose outcome was uncertain is first looked for on the
ticket. Knows nothing of dramatiq; raises the integrations' ``RetryLater`` /
``PermanentFailure``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from integrations.errors import NotConfigured, PermanentFailure, RetryLater
from integrations.jira import JiraIssues
from integrations.posthog import PostHogSharing, embed_link
from integrations.zendesk import ZendeskTickets
from worker import notes
from worker.config import Config
from worker.events import BugReport
from worker.ledger import Ledger, LockBusy, StepState

log = logging.getLogger(__name__)

#: Seconds before retrying when another worker holds this (ticket, session).
BUSY_RETRY_SECONDS = 2.0


@dataclass
class Services:
    """The clients one worker thread uses; built once per thread, not per job."""

    config: Config
    posthog: PostHogSharing
    ledger: Ledger
    zendesk: ZendeskTickets | None = None
    jira: JiraIssues | None = None


@dataclass
class AttachResult:
    link: str
    #: Steps that wrote to the ticket during this call.
    written: list[str] = field(default_factory=list)
    #: True when everything had already landed before this call.
    already_attached: bool = False


@dataclass(frozen=True)
class _Step:
    name: str
    write: Callable[[], None]
    #: None for idempotent steps; else a check "is it already on the ticket?".
    already_there: Callable[[], bool] | None = None


def _require_target_system(event: BugReport, services: Services) -> None:
    if event.zendesk_ticket is not None and services.zendesk is None:
        raise NotConfigured(
            "Zendesk",
            "Zendesk is not configured: set ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN",
        )
    if event.jira_issue is not None and services.jira is None:
        raise NotConfigured(
            "Jira",
            "Jira is not configured: set JIRA_URL with JIRA_EMAIL and JIRA_API_TOKEN "
            "(Cloud) or JIRA_PERSONAL_ACCESS_TOKEN (Data Center)",
        )


def _steps(event: BugReport, link: str, services: Services) -> list[_Step]:
    config = services.config
    _require_target_system(event, services)
    if event.zendesk_ticket is not None:
        zendesk = services.zendesk
        assert zendesk is not None
        ticket = event.zendesk_ticket
        note = notes.zendesk_note(event, link, public=config.zendesk.public_comment)
        marker = notes.dedupe_marker(link)
        steps = [
            _Step(
                "note",
                lambda: zendesk.post_note(ticket, note),
                lambda: zendesk.has_comment_containing(ticket, marker),
            )
        ]
        tag = config.zendesk.tag
        if tag:
            steps.append(_Step("tag", lambda: zendesk.add_tags(ticket, [tag])))
        return steps

    jira = services.jira
    issue = event.jira_issue
    assert issue is not None and jira is not None
    steps = []
    if config.jira.remote_link:
        remote = notes.jira_remote_link(event, link, project_id=config.posthog.project_id)
        steps.append(_Step("remote_link", lambda: jira.upsert_remote_link(issue, remote)))
    if config.jira.comment:
        visibility = (
            config.jira.comment_visibility.model_dump() if config.jira.comment_visibility else None
        )
        comment = notes.jira_comment(
            event, link, api_version=jira.api_version, visibility=visibility
        )
        marker = notes.dedupe_marker(link)
        steps.append(
            _Step(
                "comment",
                lambda: jira.add_comment(issue, comment),
                lambda: jira.has_comment_containing(issue, marker),
            )
        )
    return steps


def _step_names(event: BugReport, config: Config) -> list[str]:
    if event.zendesk_ticket is not None:
        return ["note"] + (["tag"] if config.zendesk.tag else [])
    return (["remote_link"] if config.jira.remote_link else []) + (
        ["comment"] if config.jira.comment else []
    )


#: The steps whose write is not safe to repeat (each has an ``already_there`` check).
UNREPEATABLE_STEPS = ("note", "comment")


def attach_replay(event: BugReport, services: Services) -> AttachResult:
    """Make the replay link appear on the event's ticket; safe to call any number of times."""
    _require_target_system(event, services)
    ledger = services.ledger
    target, session = event.target, event.session_id
    names = _step_names(event, services.config)
    try:
        # A duplicate arriving while the original is in flight finds the lock
        # busy and comes back in a moment, when it will find everything done.
        # Opening also marks the writes not safe to repeat "pending" (they must
        # be known to be in flight before they are sent), saving a round trip.
        reserve = tuple(name for name in names if name in UNREPEATABLE_STEPS)
        with ledger.attachment(target, session, reserve) as attachment:
            record = attachment.record
            if record.get("link") and all(ledger.state(record, n) is StepState.DONE for n in names):
                attachment.save({}, finished=True)
                return AttachResult(link=record["link"], already_attached=True)
            # Ledger changes not yet written. They are written in one round trip
            # when a step fails and at the end; losing them to a crash only means
            # minting the same link again, redoing an idempotent step, or reading
            # the ticket before a write that is still marked "pending".
            unsaved: dict[str, str] = {}
            link = record.get("link")
            if not link:
                token = attachment.mint(lambda: services.posthog.share_recording(session))
                link = embed_link(services.config.posthog.host, token, event.replay_seconds)
                unsaved["link"] = link
            result = AttachResult(link=link)
            for step in _steps(event, link, services):
                assert (step.already_there is None) == (step.name not in UNREPEATABLE_STEPS)
                state = ledger.state(record, step.name)
                if state is StepState.DONE:
                    continue
                if step.already_there is not None:
                    # An earlier attempt may have written without hearing back.
                    if state is StepState.PENDING and step.already_there():
                        log.info("%s for %s was already on %s", step.name, session, target)
                        unsaved[step.name] = ledger.done()
                        continue
                    if state is StepState.NOT_STARTED and step.name not in attachment.reserved:
                        unsaved[step.name] = ledger.pending()
                        attachment.save(unsaved)
                        unsaved = {}
                    attachment.attempt(step.name)
                # The mint lock, if due, goes with the next save: usually the last.
                # Another ticket's job for this session may wait for this job's
                # writes, which is rare; a round trip for every job is not.
                try:
                    step.write()
                except RetryLater as exc:
                    uncertain = exc.maybe_applied and step.already_there is not None
                    clear = () if uncertain else (step.name,)
                    attachment.save(unsaved, clear=clear, finished=True)
                    raise
                except PermanentFailure:
                    attachment.save(unsaved, clear=(step.name,), finished=True)
                    raise
                unsaved[step.name] = ledger.done()
                result.written.append(step.name)
            attachment.save(unsaved, finished=True)
            return result
    except LockBusy:
        raise RetryLater(
            "replay-attach",
            f"another worker is attaching session {session} to {event.target_label}",
            retry_after=BUSY_RETRY_SECONDS,
        ) from None
