"""Jira's comments and remote link: wiki markup for API v2, Atlassian Document Format for v3.

Every text a reporter supplied is escaped for the format: wiki markup escaped character by
character (URLs percent-encoded), plain text nodes in ADF.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from integrations.jira import JiraComment, JiraRemoteLink
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


def markers(marker: str, *, api_version: int) -> tuple[str, ...]:
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
    for label, value in details(event, replay):
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
    for label, value in details(event, replay):
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


def comment(
    event: BugReport, replay: Replay, *, api_version: int, visibility: dict[str, str] | None
) -> JiraComment:
    body: str | dict[str, Any] = (
        _adf_comment(event, replay) if api_version == 3 else _wiki_comment(event, replay)
    )
    return JiraComment(body=body, visibility=visibility)


def missing_comment(
    event: BugReport,
    looked_until: datetime,
    session_page: str,
    *,
    api_version: int,
    visibility: dict[str, str] | None,
) -> JiraComment:
    """The comment saying PostHog has no recording of the reported session (and no link)."""
    found, reasons = missing_text(event, looked_until)
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


def remote_link_id(project_id: int, session_id: str) -> str:
    """The remote link's globalId: Jira upserts remote links by it on an issue, so the same
    session always maps to the same link (and its revocation finds it)."""
    return f"posthog-replay:{project_id}:{session_id}"


def remote_link(event: BugReport, link: str, *, project_id: int) -> JiraRemoteLink:
    # Seen by everyone who can see the issue: never the reporter's words.
    summary = f"PostHog project {project_id}"
    return JiraRemoteLink(
        global_id=remote_link_id(project_id, event.session_id),
        url=link,
        title=f"Session replay {event.session_id}",
        summary=summary,
    )


def revoked_comment(
    link: Link, reason: str, *, api_version: int, visibility: dict[str, str] | None
) -> JiraComment:
    text, ref = revoked_text(link, reason), f"{SIGNATURE} ({revoke_marker(link.token)})"
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
