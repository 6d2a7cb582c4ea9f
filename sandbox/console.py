"""The support agent's view: a read-only page showing what the worker wrote into the doubles.

Everything shown comes from outside (ticket subjects, comment bodies written by our worker or
anyone else), so all of it is escaped; comment HTML goes through a small whitelist sanitizer.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import urlsplit

from sandbox.doubles.base import Double, Request, Response, html_response, json_response
from sandbox.doubles.jira import JiraDouble, adf_link
from sandbox.doubles.posthog import PostHogDouble
from sandbox.doubles.zendesk import ZendeskDouble

_ALLOWED_TAGS = frozenset({"a", "p", "br", "strong", "em", "code"})
_ADF_MARKS = {"strong": "strong", "em": "em", "code": "code"}
# Defence in depth: even if escaping failed somewhere, no script could run.
_REL = "nofollow noopener noreferrer"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"


class _HasDoubles(Protocol):
    @property
    def posthog(self) -> PostHogDouble: ...

    @property
    def zendesk(self) -> ZendeskDouble: ...

    @property
    def jira(self) -> JiraDouble: ...


def safe_url(url: Any) -> str | None:
    """The URL if it is http(s) (no javascript:, data: ...), else None."""
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def _link(url: str, label: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}" rel="{_REL}">{html.escape(label)}</a>'


class _Sanitizer(HTMLParser):
    """Keeps p, br, strong, em, code and a[href=http(s)] (without other attributes); every
    other tag is shown as escaped text rather than dropped, so the agent sees what was sent."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        # Open tags: (name, kept). A rejected <a> is tracked so its </a> is escaped too.
        self.stack: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or f"<{tag}>"
        if tag == "br":
            self.out.append("<br>")
        elif tag == "a":
            href = safe_url(dict(attrs).get("href"))
            if href is None:
                self.out.append(html.escape(raw))
                self.stack.append(("a", False))
            else:
                self.out.append(f'<a href="{html.escape(href, quote=True)}" rel="{_REL}">')
                self.stack.append(("a", True))
        elif tag in _ALLOWED_TAGS:
            self.out.append(f"<{tag}>")
            self.stack.append((tag, True))
        else:
            self.out.append(html.escape(raw))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("<br>")
        else:
            self.out.append(html.escape(self.get_starttag_text() or f"<{tag}/>"))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            name, kept = self.stack[index]
            if name != tag:
                continue
            # Close whatever was left open inside it, keeping the output well nested.
            for inner, inner_kept in reversed(self.stack[index + 1 :]):
                if inner_kept:
                    self.out.append(f"</{inner}>")
            del self.stack[index:]
            self.out.append(f"</{tag}>" if kept else html.escape(f"</{tag}>"))
            return
        if tag != "br":
            self.out.append(html.escape(f"</{tag}>"))

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data))

    def handle_comment(self, data: str) -> None:
        self.out.append(html.escape(f"<!--{data}-->"))

    def handle_decl(self, decl: str) -> None:
        self.out.append(html.escape(f"<!{decl}>"))

    def handle_pi(self, data: str) -> None:
        self.out.append(html.escape(f"<?{data}>"))

    def unknown_decl(self, data: str) -> None:
        self.out.append(html.escape(f"<![{data}]>"))

    def result(self) -> str:
        self.close()
        closing = [f"</{name}>" for name, kept in reversed(self.stack) if kept]
        return "".join(self.out + closing)


def sanitize_html(markup: str) -> str:
    parser = _Sanitizer()
    parser.feed(markup)
    return parser.result()


def render_adf(node: Any) -> str:
    """ADF -> safe HTML: text escaped, http(s) link marks and cards as links, nothing else."""
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    children = node.get("content") if isinstance(node.get("content"), list) else []
    inner = "".join(render_adf(child) for child in children or [])
    if kind == "text":
        text = html.escape(str(node.get("text", "")))
        for mark in node.get("marks", []) or []:
            tag = _ADF_MARKS.get(str(mark.get("type")) if isinstance(mark, dict) else "")
            if tag:
                text = f"<{tag}>{text}</{tag}>"
        url = safe_url(adf_link(node))
        if url:
            return f'<a href="{html.escape(url, quote=True)}" rel="{_REL}">{text}</a>'
        return text
    if kind == "hardBreak":
        return "<br>"
    if kind in ("inlineCard", "blockCard"):
        url = safe_url(adf_link(node))
        raw = adf_link(node) or ""
        return _link(url, url) if url else html.escape(raw)
    if kind in ("paragraph", "heading", "listItem", "blockquote", "codeBlock"):
        return f"<p>{inner}</p>"
    attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
    if not children and isinstance((attrs or {}).get("text"), str):
        return html.escape(str((attrs or {})["text"]))  # mentions, emoji, status lozenges
    return inner


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:1em;color:#222}
h1{font-size:1.4em} h2{border-bottom:2px solid #ddd;margin-top:2em}
.card{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em 1em}
.meta{color:#666;font-size:.9em}
.tag{background:#eef;border-radius:3px;padding:0 .4em;margin-right:.3em}
.badge{border-radius:3px;font-size:.8em;font-weight:600;padding:.1em .5em}
.internal{background:#fff3c4;color:#7a5b00} .public{background:#d9f2e3;color:#135f35}
.comment{border-left:3px solid #ccc;margin:.6em 0;padding:.2em .8em}
.comment.internal-note{border-color:#e0b400;background:#fffcf0}
.wiki{white-space:pre-wrap}
.status-closed{color:#a00} .dead{color:#a00;text-decoration:line-through}
"""


class Console(Double):
    """Serves `GET /` (HTML) and `GET /api/state` (JSON) from the sandbox's doubles."""

    def __init__(self, sandbox: _HasDoubles, port: int = 0) -> None:
        super().__init__(port=port)
        self.sandbox = sandbox
        self.route("GET", r"/", self._page)
        self.route("GET", r"/api/state/?", self._state)

    def state(self) -> dict[str, Any]:
        return {
            "generated_at": datetime.now(timezone.utc).isoformat(),
            "posthog": self.sandbox.posthog.snapshot(),
            "zendesk": self.sandbox.zendesk.snapshot(),
            "jira": self.sandbox.jira.snapshot(),
        }

    def _state(self, request: Request) -> Response:
        return json_response(200, self.state())

    def _page(self, request: Request) -> Response:
        state = self.state()
        body = "".join(
            [
                "<h1>replay-attach sandbox: the support agent's view</h1>",
                f'<p class="meta">Refreshed {html.escape(state["generated_at"])}. Read-only. '
                'Raw data: <a href="/api/state">/api/state</a></p>',
                "<h2>Zendesk tickets</h2>",
                "".join(_ticket_html(t) for t in state["zendesk"]["tickets"]) or "<p>None.</p>",
                "<h2>Jira issues</h2>",
                "".join(_issue_html(i) for i in state["jira"]["issues"]) or "<p>None.</p>",
                "<h2>PostHog shared recordings</h2>",
                _shares_html(state["posthog"]["shares"]),
            ]
        )
        response = html_response(
            200,
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta http-equiv="refresh" content="2">'
            f"<title>replay-attach sandbox</title><style>{_STYLE}</style></head>"
            f"<body>{body}</body></html>",
        )
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Cache-Control"] = "no-store"
        return response


def _ticket_html(ticket: dict[str, Any]) -> str:
    esc = html.escape
    tags = "".join(f'<span class="tag">{esc(str(t))}</span>' for t in ticket["tags"])
    comments = []
    for comment in ticket["comments"]:
        public = bool(comment["public"])
        badge = (
            '<span class="badge public">Public reply</span>'
            if public
            else '<span class="badge internal">Internal note</span>'
        )
        comments.append(
            f'<div class="comment{"" if public else " internal-note"}" '
            f'id="comment-{esc(str(comment["id"]))}">'
            f'{badge} <span class="meta">#{esc(str(comment["id"]))} by user '
            f"{esc(str(comment['author_id']))} at {esc(str(comment['created_at']))}</span>"
            f'<div class="body">{sanitize_html(str(comment["html_body"]))}</div></div>'
        )
    status = esc(str(ticket["status"]))
    return (
        f'<section class="card ticket" id="ticket-{esc(str(ticket["id"]))}">'
        f"<h3>#{esc(str(ticket['id']))} {esc(str(ticket['subject']))}</h3>"
        f'<p class="meta">Status: <span class="status-{status}">{status}</span> '
        f"&middot; Tags: {tags or 'none'}</p>{''.join(comments)}</section>"
    )


def _issue_html(issue: dict[str, Any]) -> str:
    esc = html.escape
    comments = []
    for comment in issue["comments"]:
        if comment["api_version"] == "3":
            rendered = f'<div class="body">{render_adf(comment["body"])}</div>'
        else:
            rendered = f'<div class="body wiki">{esc(str(comment["body"]))}</div>'
        visibility = comment.get("visibility")
        restricted = (
            f'<span class="badge internal">Restricted to {esc(str(visibility.get("type")))} '
            f"{esc(str(visibility.get('value')))}</span> "
            if isinstance(visibility, dict)
            else ""
        )
        comments.append(
            f'<div class="comment" id="comment-{esc(str(comment["id"]))}">{restricted}'
            f'<span class="meta">#{esc(str(comment["id"]))} via REST API v'
            f"{esc(str(comment['api_version']))} at {esc(str(comment['created']))}</span>"
            f"{rendered}</div>"
        )
    links = []
    for link in issue["remote_links"]:
        obj = link.get("object") or {}
        title, url = str(obj.get("title") or ""), obj.get("url")
        safe = safe_url(url)
        shown = _link(safe, title) if safe else f"{esc(title)} ({esc(str(url))})"
        links.append(
            f"<li>{shown} <span class=meta>{esc(str(link.get('relationship') or 'links to'))}"
            f" &middot; globalId {esc(str(link.get('globalId')))}</span></li>"
        )
    return (
        f'<section class="card issue" id="issue-{esc(str(issue["key"]))}">'
        f"<h3>{esc(str(issue['key']))} {esc(str(issue['summary']))}</h3>"
        f"<p class=meta>Remote links:</p><ul>{''.join(links) or '<li>none</li>'}</ul>"
        f"{''.join(comments)}</section>"
    )


def _shares_html(shares: list[dict[str, Any]]) -> str:
    if not shares:
        return "<p>None.</p>"
    rows = "".join(
        f"<tr><td><code>{html.escape(str(s['session_id']))}</code></td>"
        f'<td class="{"" if s["live"] else "dead"}"><code>{html.escape(str(s["access_token"]))}'
        f"</code></td><td>{_link(s['share_url'], 'live') if s['live'] else 'disabled'}</td></tr>"
        for s in shares
    )
    return f"<table><tr><th>Session</th><th>Token</th><th>Link</th></tr>{rows}</table>"
