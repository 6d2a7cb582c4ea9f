"""The support agent's console: what it shows, and that nothing in it can run script."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.app import Sandbox
from sandbox.console import render_adf, sanitize_html

XSS = "<script>alert('pwned')</script>"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        box.seed_demo_data()
        yield box


def zendesk_note(box: Sandbox, ticket: int, comment: dict[str, Any]) -> None:
    response = requests.put(
        f"{box.zendesk.url}/api/v2/tickets/{ticket}.json",
        json={"ticket": {"comment": comment}},
        auth=(f"{box.zendesk.email}/token", box.zendesk.api_token),
        timeout=2,
    )
    assert response.status_code == 200


def jira_post(box: Sandbox, path: str, payload: dict[str, Any]) -> None:
    response = requests.post(
        f"{box.jira.url}{path}",
        json=payload,
        auth=(box.jira.email, box.jira.api_token),
        timeout=2,
    )
    assert response.status_code == 201, response.text


def page(box: Sandbox) -> requests.Response:
    response = requests.get(box.console_url, timeout=2)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    return response


def section(html: str, element_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{re.escape(element_id)}".*?</section>', html, re.S)
    assert match, f"no section {element_id}"
    return match.group(0)


def test_page_lists_tickets_issues_and_refreshes(sandbox: Sandbox) -> None:
    response = page(sandbox)
    html = response.text
    assert '<meta http-equiv="refresh" content="2">' in html
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<script" not in html.lower()
    for ticket_id in range(101, 107):
        assert f'id="ticket-{ticket_id}"' in html
    assert "Checkout button does nothing" in html
    assert 'class="status-closed">closed<' in section(html, "ticket-106")
    for n in range(1, 6):
        assert f'id="issue-BUG-{n}"' in html
    assert '<span class="tag">checkout</span>' in section(html, "ticket-101")


def test_internal_note_and_public_reply_badges_and_safe_html(sandbox: Sandbox) -> None:
    zendesk_note(
        sandbox,
        101,
        {
            "html_body": (
                '<p>Session replay: <a href="https://ph.test/shared/tok" onclick="x()">watch</a>'
                f"</p>{XSS}<img src=x onerror=alert(1)>"
                '<a href="javascript:alert(1)">bad</a><strong>bold</strong>'
            ),
            "public": False,
        },
    )
    zendesk_note(sandbox, 102, {"body": f"Customer says {XSS}"})  # public by default
    html = page(sandbox).text
    ticket = section(html, "ticket-101")
    assert ticket.count("Internal note") == 1 and ticket.count("Public reply") == 1
    # The whitelisted link survives without its event handler...
    assert '<a href="https://ph.test/shared/tok" rel="nofollow noopener noreferrer">watch</a>' in (
        ticket
    )
    assert "onclick" not in ticket
    # ...everything else is shown as text, never as markup.
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in ticket
    assert "&lt;img src=x onerror=alert(1)&gt;" in ticket
    assert "&lt;a href=&quot;javascript:alert(1)&quot;&gt;bad&lt;/a&gt;" in ticket
    assert "<strong>bold</strong>" in ticket
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    public = section(html, "ticket-102")
    assert public.count("Public reply") == 2 and "Internal note" not in public
    assert "Customer says &lt;script&gt;" in public


def test_jira_comments_and_remote_links(sandbox: Sandbox) -> None:
    jira_post(sandbox, "/rest/api/2/issue/BUG-1/comment", {"body": f"[Watch|https://x.test] {XSS}"})
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Replay <b>: "},
                    {
                        "type": "text",
                        "text": "watch",
                        "marks": [{"type": "link", "attrs": {"href": "https://ph.test/shared/t"}}],
                    },
                    {"type": "hardBreak"},
                    {
                        "type": "text",
                        "text": "evil",
                        "marks": [{"type": "link", "attrs": {"href": "javascript:alert(1)"}}],
                    },
                ],
            }
        ],
    }
    jira_post(sandbox, "/rest/api/3/issue/BUG-2/comment", {"body": adf})
    jira_post(
        sandbox,
        "/rest/api/3/issue/BUG-2/remotelink",
        {"globalId": "g", "object": {"url": "https://ph.test/shared/t", "title": f"Replay {XSS}"}},
    )
    html = page(sandbox).text
    v2 = section(html, "issue-BUG-1")
    assert "[Watch|https://x.test] &lt;script&gt;" in v2 and "<script" not in v2
    v3 = section(html, "issue-BUG-2")
    assert "Replay &lt;b&gt;: " in v3
    assert '<a href="https://ph.test/shared/t" rel="nofollow noopener noreferrer">watch</a>' in v3
    assert "<br>evil" in v3 and "javascript:" not in v3
    assert (
        '<a href="https://ph.test/shared/t" rel="nofollow noopener noreferrer">'
        "Replay &lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;</a>"
    ) in v3
    assert "globalId g" in v3


def test_posthog_shares_are_listed(sandbox: Sandbox) -> None:
    response = requests.patch(
        f"{sandbox.posthog.url}/api/projects/1/session_recordings/sess-9/sharing",
        json={"enabled": True},
        headers={"Authorization": f"Bearer {sandbox.posthog.api_key}"},
        timeout=2,
    )
    token = response.json()["access_token"]
    html = page(sandbox).text
    assert "sess-9" in html and token in html
    assert f'href="{sandbox.posthog.url}/shared/{token}"' in html


def test_api_state_json(sandbox: Sandbox) -> None:
    zendesk_note(sandbox, 103, {"body": "note", "public": False})
    state = requests.get(f"{sandbox.console_url}/api/state", timeout=2).json()
    assert set(state) == {"generated_at", "posthog", "zendesk", "jira"}
    tickets = {t["id"]: t for t in state["zendesk"]["tickets"]}
    assert tickets[103]["comments"][-1]["public"] is False
    assert tickets[103]["comments"][-1]["body"] == "note"
    assert [i["key"] for i in state["jira"]["issues"]] == [f"BUG-{n}" for n in range(1, 6)]
    assert state["posthog"]["shares"] == []


def test_sanitizer_edge_cases() -> None:
    assert sanitize_html("<p>unclosed <em>tags") == "<p>unclosed <em>tags</em></p>"
    assert sanitize_html("stray </strong> end") == "stray &lt;/strong&gt; end"
    assert sanitize_html("<br/><BR>") == "<br><br>"
    assert sanitize_html("<!-- c --><code>x &amp; y</code>") == (
        "&lt;!-- c --&gt;<code>x &amp; y</code>"
    )
    assert sanitize_html('<a href=" HTTPS://ok.test/?a=1&amp;b=2">ok</a>') == (
        '<a href="HTTPS://ok.test/?a=1&amp;b=2" rel="nofollow noopener noreferrer">ok</a>'
    )
    assert sanitize_html('<a href="data:text/html,x">x</a>') == (
        "&lt;a href=&quot;data:text/html,x&quot;&gt;x&lt;/a&gt;"
    )
    assert sanitize_html('<a href="&#106;avascript:alert(1)">x</a>').startswith("&lt;a")
    assert sanitize_html("<p><strong>a</p>") == "<p><strong>a</strong></p>"
    assert render_adf(
        {"type": "doc", "content": [{"type": "inlineCard", "attrs": {"url": "https://c.test"}}]}
    ) == ('<a href="https://c.test" rel="nofollow noopener noreferrer">https://c.test</a>')
    assert render_adf("not a doc") == ""
