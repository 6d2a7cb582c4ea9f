"""Zendesk's notes: HTML with a plain-text twin, every reporter's text escaped for both.

Braces are neutralised in both bodies, so that a reporter's ``{{ticket.requester.email}}``
stays text and never becomes a Zendesk placeholder.
"""

from __future__ import annotations

import html
import re
from datetime import datetime

from integrations.zendesk import ZendeskNote
from worker.attach.events import BugReport
from worker.attach.links import Link
from worker.attach.rendering import (
    HEADING,
    MISSING_HEADING,
    REVOKED_HEADING,
    SIGNATURE,
    Replay,
    details,
    missing_text,
    revoke_marker,
    revoked_text,
)


def _html(value: str) -> str:
    # Braces as entities: '{{ticket.requester.email}}' stays text, never a Zendesk placeholder.
    return html.escape(value).replace("{", "&#123;").replace("}", "&#125;")


def _plain(value: str) -> str:
    """``value`` with a zero-width space between doubled braces: no Zendesk placeholder."""
    return _DOUBLED_BRACE.sub("\\g<0>\u200b", value)


_DOUBLED_BRACE = re.compile(r"[{}](?=[{}])")


def note(event: BugReport, replay: Replay, *, public: bool) -> ZendeskNote:
    e, link = _html, replay.link
    lines = [
        f"<p><strong>{HEADING}</strong> for this bug report: "
        f'<a href="{e(link)}">{replay.link_text}</a></p>',
        "<p>"
        + "<br>".join(
            f"{e(label)}: <code>{e(value)}</code>"
            if label == "Session ID"
            else f"{e(label)}: {e(value)}"
            for label, value in details(event, replay)
        )
        + "</p>",
    ]
    plain = [f"{HEADING} for this bug report: {replay.link_text}: {link}"]
    plain += [f"{label}: {_plain(value)}" for label, value in details(event, replay)]
    if event.description:
        lines.append(f"<p>Reporter's description:<br><em>{e(event.description)}</em></p>")
        plain.append(f"Reporter's description: {_plain(event.description)}")
    lines.append(f"<p>{replay.warning} {SIGNATURE}</p>")
    plain.append(f"{replay.warning} {SIGNATURE}")
    return ZendeskNote(html_body="\n".join(lines), plain_body="\n".join(plain), public=public)


def missing_note(
    event: BugReport, looked_until: datetime, session_page: str, *, public: bool
) -> ZendeskNote:
    """The note saying PostHog has no recording of the reported session (and no link to one)."""
    found, reasons = missing_text(event, looked_until)
    e = _html
    rows = [f"{e(label)}: {e(value)}" for label, value in details(event)[1:]]
    rows.append(
        f'In PostHog (for those who can log in): <a href="{e(session_page)}">{e(session_page)}</a>'
    )
    lines = [
        f"<p><strong>{MISSING_HEADING}</strong> for this bug report.</p>",
        f"<p>{e(found)}<br>" + "<br>".join(rows) + "</p>",
        f"<p>{e(reasons)}</p>",
    ]
    plain = [f"{MISSING_HEADING} for this bug report.", _plain(found)]
    plain += [f"{label}: {_plain(value)}" for label, value in details(event)[1:]]
    plain += [f"In PostHog (for those who can log in): {session_page}", reasons]
    return ZendeskNote(html_body="\n".join(lines), plain_body="\n".join(plain), public=public)


def revoked_note(link: Link, reason: str, *, public: bool) -> ZendeskNote:
    text, ref = revoked_text(link, reason), f"{SIGNATURE} ({revoke_marker(link.token)})"
    html_body = f"<p><strong>{REVOKED_HEADING}</strong></p>\n<p>{_html(text)}</p>\n<p>{ref}</p>"
    plain = f"{REVOKED_HEADING}\n{_plain(text)}\n{ref}"
    return ZendeskNote(html_body=html_body, plain_body=plain, public=public)
