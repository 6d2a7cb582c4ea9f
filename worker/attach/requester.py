"""The requester rule: a recording goes only to a ticket of its own person.

Whatever a browser sends is chosen by whoever is on the other side: a PostHog
event's ``$session_id`` and ticket number, or a session id a requester types
into a ticket field. So, for the doors such values reach
(``privacy.match_requester``), a recording is shared and posted only on a
ticket whose requester is the recording's person, both as the vendors' own
APIs tell it, never as the delivery claims:

* the requester: the Zendesk ticket's requester's email, or the Jira issue's
  reporter's ``emailAddress``;
* the person: PostHog's person of the recording (or, for a report whose
  session has no recording, the person of the event's ``distinct_id``). The
  requester matches when its email equals, ignoring case, the person's
  ``email`` property or one of its distinct ids; when PostHog listed only the
  first ten distinct ids, the person is looked up by the requester's email.

A requester who cannot be told (no email: a Jira site hiding addresses) or a
person without one (an anonymous visitor) never matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from integrations.posthog_answers import Person
from worker.attach.events import BugReport
from worker.attach.helpdesks import HELPDESKS, helpdesk_of
from worker.attach.services import Services

#: Outcomes of a job refused by the rule (see ``worker.jobs.outcomes``).
MISMATCH = "requester_mismatch"
UNKNOWN = "requester_unknown"


#: The intake's doors whose ticket is the helpdesk's own (the webhook fired for it):
#: only the session id in it was typed by a requester.
HELPDESK_DOORS = frozenset(helpdesk.door for helpdesk in HELPDESKS.values())
#: Every webhook door (``privacy.match_requester: webhooks``).
WEBHOOK_DOORS = HELPDESK_DOORS | {"/webhooks/posthog"}


class RequesterCheck(Enum):
    """How much of an event the rule checks, by where the event came from."""

    #: The sender vouches for its users (a backend, a person at the command line).
    OFF = "off"
    #: The recording must be the requester's; the ticket is the helpdesk's own, so a
    #: note saying there is no recording may go on it.
    RECORDING = "recording"
    #: The ticket number too came from the sender: even a note saying there is no
    #: recording goes only on a ticket of the event's person.
    STRICT = "strict"


def check_for(mode: str, door: str | None) -> RequesterCheck:
    """What ``privacy.match_requester`` (``webhooks``, ``all``, ``off``) asks of an event
    that came through ``door`` (None: the command line or the Python API)."""
    if mode == "off" or (mode == "webhooks" and door not in WEBHOOK_DOORS):
        return RequesterCheck.OFF
    return RequesterCheck.RECORDING if door in HELPDESK_DOORS else RequesterCheck.STRICT


@dataclass(frozen=True)
class Refusal:
    """Why nothing was shared or posted: which outcome, and a reason naming no one."""

    outcome: str
    reason: str


def requester_email(event: BugReport, services: Services) -> str | None:
    """The ticket's requester's email, as the helpdesk's API shows it."""
    return helpdesk_of(event.ticket).requester_email(event.ticket, services)


def _same(email: str, other: str | None) -> bool:
    return other is not None and other.strip().casefold() == email.strip().casefold()


def is_person(email: str, person: Person, services: Services) -> bool:
    """Whether ``email`` is ``person``'s: its email property, or one of its distinct ids."""
    if _same(email, person.email) or any(_same(email, i) for i in person.distinct_ids):
        return True
    if person.complete or person.id is None:
        return False
    # The recording's answer listed only some of the person's ids: ask PostHog whose it is.
    found = services.posthog.find_person(email.strip())
    return found is not None and found.id == person.id


def refusal(event: BugReport, person: Person | None, services: Services) -> Refusal | None:
    """None when the ticket's requester is ``person``; else why the job must share nothing."""
    where = event.target_label
    if person is None:
        return Refusal(
            UNKNOWN,
            f"session {event.session_id}'s person cannot be told (no person profile): "
            f"nothing is shared or posted on {where}",
        )
    email = requester_email(event, services)
    if email is None:
        return Refusal(
            UNKNOWN,
            f"the requester of {where} has no email the helpdesk shows: it cannot be matched "
            f"to session {event.session_id}'s person, so nothing is shared or posted",
        )
    if not is_person(email, person, services):
        return Refusal(
            MISMATCH,
            f"the requester of {where} is not the person recorded in session "
            f"{event.session_id}: nothing is shared or posted",
        )
    return None


def event_person(event: BugReport, services: Services) -> Person | None:
    """The person of the event's ``distinct_id`` (for a session without a recording)."""
    if event.distinct_id is None:
        return None
    return services.posthog.find_person(event.distinct_id)
