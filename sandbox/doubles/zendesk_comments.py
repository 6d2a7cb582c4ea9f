"""A Zendesk comment as Zendesk stores it: plain and HTML bodies derived from each other, and
public unless told otherwise."""

from __future__ import annotations

import html
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from sandbox.doubles.zendesk_answers import stamp


class _TextExtractor(HTMLParser):
    """html_body -> body, the way Zendesk derives a comment's plain text."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    _HIDDEN = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in self._HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BREAKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:  # Zendesk drops scripts and styles from the plain body
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)


def text_to_html(text: str) -> str:
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    inner = "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    # Real Zendesk also wraps this in <div class="zd-comment">; plain paragraphs are enough here.
    return inner


def make_comment(
    raw: dict[str, Any], comment_id: int, author_id: int, now: datetime
) -> dict[str, Any]:
    """The stored comment for a request's `comment` object `raw`."""
    html_body = raw.get("html_body")
    if html_body:
        body = html_to_text(str(html_body))
    else:
        body = str(raw.get("body", ""))
        html_body = text_to_html(body)
    public = raw.get("public", True)  # the trap: omitted means a PUBLIC reply
    if isinstance(public, str):
        public = public.lower() != "false"
    return {
        "id": comment_id,
        "type": "Comment",
        "author_id": author_id,
        "body": body,
        "html_body": str(html_body),
        "plain_body": body,
        "public": bool(public),
        "attachments": [],
        "created_at": stamp(now),
    }
