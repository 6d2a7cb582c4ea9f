"""What lands on the ticket: the note, comment and remote link, in each format.

Every text a reporter supplied (description, page URL) is escaped for the
format it is rendered in: HTML for Zendesk, wiki markup for Jira v2, plain
text nodes for Jira v3 (Atlassian Document Format).
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from integrations.jira import JiraComment, JiraRemoteLink
from integrations.zendesk import ZendeskNote
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


def dedupe_marker(link: str) -> str:
    """The text that identifies our note in a ticket, in every format: the path of the page
    it links to (the shared link without ``?t=``, or the session's PostHog page)."""
    return urlsplit(link).path


def posthog_session_page(host: str, project_id: int, session_id: str) -> str:
    """The session's page in PostHog's app (for people who can log in there; not public)."""
    return f"{host.rstrip('/')}/project/{project_id}/replay/{quote(session_id, safe='')}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _recording_row(facts: RecordingFacts) -> str | None:
    parts = []
    if facts.duration_seconds is not None:
        parts.append(f"{minutes_seconds(facts.duration_seconds)} long")
    if facts.start_time is not None:
        parts.append(f"started {_utc(facts.start_time)}")
    if facts.ongoing:
        parts.append("still recording")
    return ", ".join(parts) or None


def _start_row(start: StartPoint) -> str:
    why = "when the report was sent" if start.source == "reported" else "as given with the report"
    return f"{minutes_seconds(start.seconds)}, {why}"


def _details(event: BugReport, replay: Replay | None = None) -> list[tuple[str, str]]:
    rows = [("Session ID", event.session_id)]
    recording = _recording_row(replay.recording) if replay and replay.recording else None
    if recording:
        rows.append(("Recording", recording))
    if replay is not None and replay.start is not None:
        rows.append(("Opens at", _start_row(replay.start)))
    if event.reported_at is not None:
        rows.append(("Reported at", event.reported_at.isoformat()))
    if event.page_url is not None:
        rows.append(("Page", event.page_url))
    return rows


def _html(value: str) -> str:
    # Braces as entities: '{{ticket.requester.email}}' stays text, never a Zendesk placeholder.
    return html.escape(value).replace("{", "&#123;").replace("}", "&#125;")


def _plain(value: str) -> str:
    """``value`` with a zero-width space between doubled braces: no Zendesk placeholder."""
    return _DOUBLED_BRACE.sub("\\g<0>\u200b", value)


_DOUBLED_BRACE = re.compile(r"[{}](?=[{}])")


def zendesk_note(event: BugReport, replay: Replay, *, public: bool) -> ZendeskNote:
    e, link = _html, replay.link
    lines = [
        f"<p><strong>{HEADING}</strong> for this bug report: "
        f'<a href="{e(link)}">{replay.link_text}</a></p>',
        "<p>"
        + "<br>".join(
            f"{e(label)}: <code>{e(value)}</code>"
            if label == "Session ID"
            else f"{e(label)}: {e(value)}"
            for label, value in _details(event, replay)
        )
        + "</p>",
    ]
    plain = [f"{HEADING} for this bug report: {replay.link_text}: {link}"]
    plain += [f"{label}: {_plain(value)}" for label, value in _details(event, replay)]
    if event.description:
        lines.append(f"<p>Reporter's description:<br><em>{e(event.description)}</em></p>")
        plain.append(f"Reporter's description: {_plain(event.description)}")
    lines.append(f"<p>{replay.warning} {SIGNATURE}</p>")
    plain.append(f"{replay.warning} {SIGNATURE}")
    return ZendeskNote(html_body="\n".join(lines), plain_body="\n".join(plain), public=public)


#: What a URL in wiki markup keeps as it is: its delimiters that mean nothing in wiki markup
#: (and '%', so that its escapes stay escapes). Every other character but letters and digits
#: is percent-encoded, which a server decodes to the same URL.
_WIKI_URL_KEPT = ":/?&=#%@,;$'."
#: Characters that ``quote`` never encodes but wiki markup reads as text effects: '-deleted-',
#: '_emphasis_', '~subscript~'. Encoded, they are the same URL (RFC 3986, section 2.3).
_WIKI_UNRESERVED = str.maketrans({"-": "%2D", "_": "%5F", "~": "%7E"})
_WIKI_HOST_UNRESERVED = str.maketrans({"_": "%5F", "~": "%7E"})
# In a host name '-' only stands between letters and digits, where it starts no markup;
# anywhere else it is encoded.
_WIKI_HOST_DASH = re.compile(r"(?<![A-Za-z0-9])-|-(?![A-Za-z0-9])")
# A '%' that starts no escape is a '%' of the text.
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# '??' starts a citation; a single '?' means nothing.
_DOUBLED_QUESTION_MARK = re.compile(r"(?<=\?)\?")


def _wiki_component(text: str, kept: str = _WIKI_URL_KEPT) -> str:
    escaped = quote(_LONE_PERCENT.sub("%25", text), safe=kept)
    return escaped.translate(_WIKI_UNRESERVED)


def _wiki_url(url: str) -> str:
    """``url`` as Jira wiki markup reads it unchanged: no character in it starts markup.

    '!' would start an image, '|' and ']' end the [text|url] link early, '{' a macro, '(' an
    emoticon, '*', '+', '^', '??' (and '-', '_', '~') a text effect, '\\' an escape: each is
    percent-encoded. In the query, read as form fields, '+' becomes '%20' (the space it
    means there) and every '?' '%3F'; in the fragment, which the page's own script may read
    undecoded, only a '?' that follows another.
    """
    parts = urlsplit(url)
    netloc = quote(_LONE_PERCENT.sub("%25", parts.netloc), safe=_WIKI_URL_KEPT + "-")
    netloc = _WIKI_HOST_DASH.sub("%2D", netloc).translate(_WIKI_HOST_UNRESERVED)
    query = parts.query.replace("+", "%20")
    fragment = _wiki_component(parts.fragment)
    return parts._replace(
        netloc=netloc,
        path=_wiki_component(parts.path),
        query=_wiki_component(query, _WIKI_URL_KEPT.replace("?", "")),
        fragment=_DOUBLED_QUESTION_MARK.sub("%3F", fragment),
    ).geturl()


def jira_markers(marker: str, *, api_version: int) -> tuple[str, ...]:
    """The forms in which a Jira comment of ``api_version`` holds ``marker`` (a URL's path).

    A v2 comment holds it percent-encoded like the rest of its URL (see ``_wiki_url``), or
    as it is when an earlier version of replay-attach posted the comment.
    """
    if api_version == 3:
        return (marker,)
    encoded = _wiki_component(marker)
    return (encoded, marker) if encoded != marker else (marker,)


#: Characters with a meaning in Jira's wiki markup somewhere in a line (the set of the
#: jira-wiki-markup parser pandoc uses), plus '#', which starts a numbered list.
WIKI_SPECIAL = frozenset("_+-*^~|[]{}(?!&\\:;#")
# A line that starts with these would become a heading or a quote.
_WIKI_BLOCK_START = re.compile(r"^(\s*(?:h[1-6]|bq))\.", re.MULTILINE)


def wiki_text(text: str) -> str:
    """``text`` as Jira wiki markup that shows it as it is and means nothing.

    Every special character is escaped with a backslash, except the backslash itself,
    which cannot be escaped and becomes the entity ``&bsol;`` (a trailing backslash would
    otherwise escape whatever follows). Wrapping the text in ``{noformat}`` is not enough:
    a description ending in a backslash escapes the closing tag.
    """
    escaped = "".join(
        "&bsol;" if char == "\\" else f"\\{char}" if char in WIKI_SPECIAL else char for char in text
    )
    return _WIKI_BLOCK_START.sub(r"\1&#46;", escaped)


def _wiki_comment(event: BugReport, replay: Replay) -> str:
    lines = [f"*{HEADING}* for this bug report: [{replay.link_text}|{_wiki_url(replay.link)}]"]
    for label, value in _details(event, replay):
        if label == "Page":
            lines.append(f"Page: [{_wiki_url(value)}]")
        else:
            lines.append(f"{label}: {{{{{wiki_text(value)}}}}}")
    if event.description:
        lines.append("Reporter's description:\n" + wiki_text(event.description))
    lines.append(f"_{replay.warning} {SIGNATURE}_")
    return "\n".join(lines)


def _text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def _adf_comment(event: BugReport, replay: Replay) -> dict[str, Any]:
    link_mark = {"type": "link", "attrs": {"href": replay.link}}
    content: list[dict[str, Any]] = [
        {
            "type": "paragraph",
            "content": [
                _text(HEADING, {"type": "strong"}),
                _text(" for this bug report: "),
                _text(replay.link_text, link_mark),
            ],
        }
    ]
    detail_nodes: list[dict[str, Any]] = []
    for label, value in _details(event, replay):
        if detail_nodes:
            detail_nodes.append({"type": "hardBreak"})
        detail_nodes.append(_text(f"{label}: "))
        if label == "Page":
            detail_nodes.append(_text(value, {"type": "link", "attrs": {"href": value}}))
        else:
            detail_nodes.append(
                _text(value, {"type": "code"} if label == "Session ID" else {"type": "em"})
            )
    content.append({"type": "paragraph", "content": detail_nodes})
    if event.description:
        content.append({"type": "paragraph", "content": [_text("Reporter's description:")]})
        content.append({"type": "codeBlock", "content": [_text(event.description)]})
    content.append(
        {"type": "paragraph", "content": [_text(f"{replay.warning} {SIGNATURE}", {"type": "em"})]}
    )
    return {"type": "doc", "version": 1, "content": content}


def jira_comment(
    event: BugReport, replay: Replay, *, api_version: int, visibility: dict[str, str] | None
) -> JiraComment:
    body: str | dict[str, Any] = (
        _adf_comment(event, replay) if api_version == 3 else _wiki_comment(event, replay)
    )
    return JiraComment(body=body, visibility=visibility)


def _missing_text(event: BugReport, looked_until: datetime) -> tuple[str, str]:
    found = (
        f"PostHog has no recording of session {event.session_id}, looked for from the report "
        f"until {_utc(looked_until)}."
    )
    return found, f"{MISSING_REASONS} {SIGNATURE}"


def zendesk_missing_note(
    event: BugReport, looked_until: datetime, session_page: str, *, public: bool
) -> ZendeskNote:
    """The note saying PostHog has no recording of the reported session (and no link to one)."""
    found, reasons = _missing_text(event, looked_until)
    e = _html
    rows = [f"{e(label)}: {e(value)}" for label, value in _details(event)[1:]]
    rows.append(
        f'In PostHog (for those who can log in): <a href="{e(session_page)}">{e(session_page)}</a>'
    )
    lines = [
        f"<p><strong>{MISSING_HEADING}</strong> for this bug report.</p>",
        f"<p>{e(found)}<br>" + "<br>".join(rows) + "</p>",
        f"<p>{e(reasons)}</p>",
    ]
    plain = [f"{MISSING_HEADING} for this bug report.", _plain(found)]
    plain += [f"{label}: {_plain(value)}" for label, value in _details(event)[1:]]
    plain += [f"In PostHog (for those who can log in): {session_page}", reasons]
    return ZendeskNote(html_body="\n".join(lines), plain_body="\n".join(plain), public=public)


def jira_missing_comment(
    event: BugReport,
    looked_until: datetime,
    session_page: str,
    *,
    api_version: int,
    visibility: dict[str, str] | None,
) -> JiraComment:
    """The comment saying PostHog has no recording of the reported session (and no link)."""
    found, reasons = _missing_text(event, looked_until)
    where = "In PostHog (for those who can log in): "
    body: str | dict[str, Any]
    if api_version == 3:
        page_link = {"type": "link", "attrs": {"href": session_page}}
        body = {
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "paragraph", "content": [_text(MISSING_HEADING, {"type": "strong"})]},
                {"type": "paragraph", "content": [_text(found)]},
                {"type": "paragraph", "content": [_text(where), _text(session_page, page_link)]},
                {"type": "paragraph", "content": [_text(reasons, {"type": "em"})]},
            ],
        }
    else:
        body = (
            f"*{MISSING_HEADING}*\n{wiki_text(found)}\n{wiki_text(where)}"
            f"[{_wiki_url(session_page)}]\n_{wiki_text(reasons)}_"
        )
    return JiraComment(body=body, visibility=visibility)


def jira_remote_link(event: BugReport, link: str, *, project_id: int) -> JiraRemoteLink:
    # Seen by everyone who can see the issue: never the reporter's words.
    summary = f"PostHog project {project_id}"
    return JiraRemoteLink(
        # Jira upserts remote links by globalId on an issue: the same session
        # always maps to the same link.
        global_id=remote_link_global_id(project_id, event.session_id),
        url=link,
        title=f"Session replay {event.session_id}",
        summary=summary,
    )


def remote_link_global_id(project_id: int, session_id: str) -> str:
    """The id by which Jira knows our remote link to a session on an issue (its globalId)."""
    return f"posthog-replay:{project_id}:{session_id}"


def revoke_marker(token: str) -> str:
    """The text that identifies our "link revoked" note in a ticket, in every format: a
    reference made of hex digits only (nothing any format escapes), never the token itself."""
    return "ref " + hashlib.sha256(token.encode()).hexdigest()[:12]


def _revoked_text(link: Link, reason: str) -> str:
    revoked = link.revoked_at if link.revoked_at is not None else link.shared_at
    return (
        f"The session replay link posted on this ticket (session {link.session_id}, shared "
        f"{_utc(datetime.fromtimestamp(link.shared_at, timezone.utc))}) was revoked on "
        f"{_utc(datetime.fromtimestamp(revoked, timezone.utc))}: {reason}. It no longer opens "
        "the recording."
    )


def zendesk_revoked_note(link: Link, reason: str, *, public: bool) -> ZendeskNote:
    text, ref = _revoked_text(link, reason), f"{SIGNATURE} ({revoke_marker(link.token)})"
    html_body = f"<p><strong>{REVOKED_HEADING}</strong></p>\n<p>{_html(text)}</p>\n<p>{ref}</p>"
    plain = f"{REVOKED_HEADING}\n{_plain(text)}\n{ref}"
    return ZendeskNote(html_body=html_body, plain_body=plain, public=public)


def jira_revoked_comment(
    link: Link, reason: str, *, api_version: int, visibility: dict[str, str] | None
) -> JiraComment:
    text, ref = _revoked_text(link, reason), f"{SIGNATURE} ({revoke_marker(link.token)})"
    body: str | dict[str, Any]
    if api_version == 3:
        body = {
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "paragraph", "content": [_text(REVOKED_HEADING, {"type": "strong"})]},
                {"type": "paragraph", "content": [_text(text)]},
                {"type": "paragraph", "content": [_text(ref, {"type": "em"})]},
            ],
        }
    else:
        body = f"*{REVOKED_HEADING}*\n{wiki_text(text)}\n_{wiki_text(ref)}_"
    return JiraComment(body=body, visibility=visibility)
