"""What every helpdesk's note or comment says, whatever its format.

The headings, the warning, the rows of details and the markers that find our notes again
are the same on every helpdesk; each helpdesk renders them in its own format
(``worker.attach.helpdesks``), escaping every text a reporter supplied (description, page
URL) for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from worker.attach.events import BugReport
from worker.attach.links import Link
from worker.attach.recording import RecordingFacts, StartPoint, minutes_seconds

LINK_TEXT = "Watch the session replay"
HEADING = "PostHog session replay"
WARNING = "Anyone who has this link can watch the recording."
PRIVATE_LINK_TEXT = "Open the session replay in PostHog"
PRIVATE_WARNING = (
    "PostHog's organisation has public sharing switched off: the link opens the recording for "
    "people who can log in to PostHog."
)
SIGNATURE = "Posted by replay-attach."
MISSING_HEADING = "No PostHog session replay"
REVOKED_HEADING = "PostHog session replay link revoked"
MISSING_REASONS = (
    "No link was posted. Usual reasons: recording is switched off or sampled out for this "
    "user or page, an ad or tracking blocker stopped it, the session was shorter than the "
    "project's minimum recording length, or the recording was deleted by retention."
)


@dataclass(frozen=True)
class Replay:
    """What a step writes: the embed link, and what the agent should know before opening it."""

    link: str
    recording: RecordingFacts | None = None
    start: StartPoint | None = None
    #: The link is the session's page in PostHog's app, not a public link: the organisation
    #: switched public sharing off, so only agents with a PostHog login can open it.
    private: bool = False

    @property
    def link_text(self) -> str:
        return PRIVATE_LINK_TEXT if self.private else LINK_TEXT

    @property
    def warning(self) -> str:
        return PRIVATE_WARNING if self.private else WARNING


def dedupe_marker(url: str) -> str:
    """The text that identifies our note in a ticket, in every format: the path of the URL it
    links to (the replay link without ``?t=``, or for a "no recording" note the session's
    PostHog page)."""
    return urlsplit(url).path


def without_credentials(url: str) -> str:
    """``url`` without its ``user:password@``: a page the reporter opened with one in its
    address would otherwise hand it to everyone who reads the ticket."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url  # no parts to tell apart: shown as the reporter sent it, escaped
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def posthog_session_page(host: str, project_id: int, session_id: str) -> str:
    """The session's page in PostHog's app (for people who can log in there; not public)."""
    return f"{host.rstrip('/')}/project/{project_id}/replay/{quote(session_id, safe='')}"


def utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _recording_row(facts: RecordingFacts) -> str | None:
    parts = []
    if facts.duration_seconds is not None:
        parts.append(f"{minutes_seconds(facts.duration_seconds)} long")
    if facts.start_time is not None:
        parts.append(f"started {utc(facts.start_time)}")
    if facts.ongoing:
        parts.append("still recording")
    return ", ".join(parts) or None


def _start_row(start: StartPoint) -> str:
    why = "when the report was sent" if start.source == "reported" else "as given with the report"
    return f"{minutes_seconds(start.seconds)}, {why}"


def details(event: BugReport, replay: Replay | None = None) -> list[tuple[str, str]]:
    rows = [("Session ID", event.session_id)]
    recording = _recording_row(replay.recording) if replay and replay.recording else None
    if recording:
        rows.append(("Recording", recording))
    if replay is not None and replay.start is not None:
        rows.append(("Opens at", _start_row(replay.start)))
    if event.reported_at is not None:
        rows.append(("Reported at", event.reported_at.isoformat()))
    if event.page_url is not None:
        rows.append(("Page", without_credentials(event.page_url)))
    return rows


def missing_text(event: BugReport, looked_until: datetime) -> tuple[str, str]:
    found = (
        f"PostHog has no recording of session {event.session_id}, looked for from the report "
        f"until {utc(looked_until)}."
    )
    return found, f"{MISSING_REASONS} {SIGNATURE}"


def revoke_marker(token: str) -> str:
    """The text that identifies our "link revoked" note in a ticket, in every format: a
    reference made of hex digits only (nothing any format escapes), never the token itself."""
    return "ref " + hashlib.sha256(token.encode()).hexdigest()[:12]


def revoked_text(link: Link, reason: str) -> str:
    revoked = link.revoked_at if link.revoked_at is not None else link.shared_at
    return (
        f"The session replay link posted on this ticket (session {link.session_id}, shared "
        f"{utc(datetime.fromtimestamp(link.shared_at, timezone.utc))}) was revoked on "
        f"{utc(datetime.fromtimestamp(revoked, timezone.utc))}: {reason}. It no longer opens "
        "the recording."
    )
