"""What lands on a ticket, rendered without any server: escaping and the fixed parts."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from worker.attach import rendering
from worker.attach.events import parse_event
from worker.attach.helpdesks import jira_comments, zendesk_notes
from worker.attach.recording import RecordingFacts, StartPoint

LINK = "https://us.posthog.com/embedded/tok-123?t=95"
REPLAY = rendering.Replay(LINK, start=StartPoint(95, "given"))


def event(**fields: object) -> object:
    return parse_event({"session_id": "s-1", "zendesk_ticket": 7, **fields})


def test_the_dedupe_marker_is_the_links_path_whatever_the_start_time() -> None:
    assert rendering.dedupe_marker(LINK) == "/embedded/tok-123"
    assert rendering.dedupe_marker(LINK.replace("?t=95", "")) == "/embedded/tok-123"


def test_a_zendesk_note_escapes_the_reporters_words_and_page() -> None:
    report = parse_event(
        {
            "session_id": "s-1",
            "zendesk_ticket": 7,
            "description": '<script>alert("x")</script> & more',
            "page_url": "https://app.example.com/?q=<b>",
            "replay_seconds": 95,
        }
    )
    note = zendesk_notes.note(report, REPLAY, public=False)
    assert note.public is False
    assert "<script>" not in note.html_body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in note.html_body
    assert "?q=&lt;b&gt;" in note.html_body
    assert 'href="https://us.posthog.com/embedded/tok-123?t=95"' in note.html_body
    assert (
        "<code>s-1</code>" in note.html_body
        and "Opens at: 1:35, as given with the report" in note.html_body
    )
    assert LINK in note.plain_body and rendering.WARNING in note.plain_body
    assert zendesk_notes.note(report, REPLAY, public=True).public is True


def _markup_left(text: str) -> list[str]:
    """What in ``text`` Jira's wiki renderer would read as markup: special characters not
    escaped, backslashes that escape nothing special, and lines that start a block."""
    left = []
    escaped = False
    # The entities wiki_text writes itself: a reporter's '&' is always escaped.
    for char in re.sub(r"&bsol;|&#46;", "", text):
        if escaped:
            if char not in jira_comments.WIKI_SPECIAL:
                left.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in jira_comments.WIKI_SPECIAL:
            left.append(char)
    if escaped:
        left.append("trailing \\")
    left += re.findall(r"(?m)^\s*(?:h[1-6]|bq)\.", text)
    return left


@pytest.mark.parametrize(
    "description",
    [
        "the last word escapes what follows\\",
        "{noformat}[Sign in|https://evil.example/login]{noformat}",
        "ping [~jsmith] and [~admin]",
        "!https://evil.example/pixel.png!",
        "{color:red}urgent{color} {code}x{code}",
        "a|b||c",
        "*bold* _it_ -strike- +under+ ^sup^ ~sub~ ??cite?? {{mono}}",
        "h1. Heading\nbq. quote\n# item\n* item\n----",
        "back\\slash\\\\ and :) ;) (!) &amp; &#123;",
    ],
)
def test_a_jira_v2_comment_shows_the_reporters_text_as_text(description: str) -> None:
    report = parse_event({"session_id": "s-1", "jira_issue": "BUG-1", "description": description})
    comment = jira_comments.comment(report, REPLAY, api_version=2, visibility=None)
    assert isinstance(comment.body, str)
    shown = comment.body.split("Reporter's description:\n", 1)[1].rsplit("\n_", 1)[0]
    assert shown == jira_comments.wiki_text(description)
    assert _markup_left(shown) == []
    # Unescaped again, it is the reporter's text exactly.
    entities = {"&bsol;": "\\", "&#46;": "."}
    unescaped = re.sub(
        r"\\(.)|&bsol;|&#46;", lambda m: m.group(1) or entities[m.group(0)], shown, flags=re.S
    )
    assert unescaped == description


def test_a_jira_v2_comment_keeps_links_and_values_intact() -> None:
    report = parse_event(
        {
            "session_id": "s_1-x",
            "jira_issue": "BUG-1",
            "page_url": "https://app.example.com/a|b]c",
            "reported_at": "2026-11-26T10:00:00+01:00",
        }
    )
    comment = jira_comments.comment(report, REPLAY, api_version=2, visibility=None)
    assert isinstance(comment.body, str)
    # '|' and ']' in a URL would end the [text|url] link early.
    assert "Page: [https://app.example.com/a%7Cb%5Dc]" in comment.body
    # '-' would start struck-out text: encoded, it is the same URL.
    assert (
        "[Watch the session replay|https://us.posthog.com/embedded/tok%2D123?t=95]" in comment.body
    )
    assert "Session ID: {{s\\_1\\-x}}" in comment.body
    assert "Reported at: {{2026\\-11\\-26T10\\:00\\:00\\+01\\:00}}" in comment.body


#: What may start markup in a URL of a Jira v2 comment: an image (!), a link ([|]), a macro
#: ({}), an emoticon (()), a text effect (*_-+^~ and ??), an escape or line break (\\).
WIKI_URL_MARKUP = set("!|[]{}()*_-+^~\\")


def _markup_in(url: str) -> set[str]:
    """What in ``url`` may start wiki markup; a host name's '-' between letters or digits
    (the only place a valid host name has one) cannot."""
    parts = urlsplit(url)
    host = re.sub(r"(?<=[A-Za-z0-9])-(?=[A-Za-z0-9])", "", parts.netloc)
    return WIKI_URL_MARKUP & set(parts._replace(netloc=host).geturl())


def _same_url(shown: str, given: str) -> bool:
    """Whether a server reads ``shown`` as ``given``: each part percent-decoded, the query as
    form fields."""
    a, b = urlsplit(shown), urlsplit(given)
    return (
        (a.scheme, unquote(a.netloc), unquote(a.path), unquote(a.fragment))
        == (b.scheme, unquote(b.netloc), unquote(b.path), unquote(b.fragment))
    ) and parse_qsl(a.query, keep_blank_values=True) == parse_qsl(b.query, keep_blank_values=True)


@pytest.mark.parametrize(
    "page_url",
    [
        "https://app.example.com/#!/settings!profile",
        "https://app.example.com/a_b_/c-d-/~e~?q=*bold*&r=x+y^2~3(!)[x]{y}|z??w",
        "https://my-app.example.com:8443/--/-strike-/+under+",
        "https://-x-.example.com/",
        "https://app.example.com/a??b?c=100%&d=%zz#/e??f?g",
        "https://app.example.com/caf\u00e9 menu?q=a%2Bb&q=%F0%9F%99%82",
        "https://app.example.com/a\\b?next=/x\\y#frag!ment",
    ],
)
def test_every_url_in_a_jira_v2_comment_starts_no_markup_and_stays_the_same_url(
    page_url: str,
) -> None:
    link = "https://us.posthog.com/embedded/a-b_c~d!e?t=95"
    report = parse_event({"session_id": "s-1", "jira_issue": "BUG-1", "page_url": page_url})
    body = jira_comments.comment(
        report, rendering.Replay(link), api_version=2, visibility=None
    ).body
    assert isinstance(body, str)
    urls = re.findall(r"\[(?:[^|\]]*\|)?(https?://[^\]]*)\]", body)
    assert len(urls) == 2, body
    for shown, given in zip(urls, [link, page_url], strict=True):
        assert _markup_in(shown) == set(), shown
        assert _same_url(shown, given), (shown, given)
    # The text that finds the comment on the issue again is in it, as the comment writes it.
    (form, plain) = jira_comments.markers(rendering.dedupe_marker(link), api_version=2)
    assert form in body and plain == "/embedded/a-b_c~d!e"
    assert jira_comments.markers(rendering.dedupe_marker(link), api_version=3) == (plain,)
    page = rendering.posthog_session_page("https://us.posthog.com", 1, "s_1-x")
    missing = jira_comments.missing_comment(
        report, datetime.now(timezone.utc), page, api_version=2, visibility=None
    ).body
    (url,) = re.findall(r"\[(https?://[^\]]*)\]", str(missing))
    assert _markup_in(url) == set() and _same_url(url, page)
    assert jira_comments.markers(rendering.dedupe_marker(page), api_version=2)[0] in missing


def test_zendesk_placeholders_in_the_reporters_text_stay_inert() -> None:
    report = parse_event(
        {
            "session_id": "s-1",
            "zendesk_ticket": 7,
            "description": "mail {{ticket.requester.email}} and {{{raw}}}",
            "page_url": "https://app.example.com/?q={{current_user.name}}",
        }
    )
    note = zendesk_notes.note(report, REPLAY, public=False)
    for body in (note.html_body, note.plain_body):
        assert "{{" not in body and "}}" not in body
    assert "&#123;&#123;ticket.requester.email&#125;&#125;" in note.html_body
    shown = note.plain_body.replace("\u200b", "")
    assert "mail {{ticket.requester.email}} and {{{raw}}}" in shown
    assert "?q={{current_user.name}}" in shown


def test_a_jira_v3_comment_is_a_document_whose_text_is_never_markup() -> None:
    report = parse_event(
        {"session_id": "s-1", "jira_issue": "BUG-1", "description": "*bold* [x|http://y]"}
    )
    visibility = {"type": "role", "value": "Developers"}
    comment = jira_comments.comment(report, REPLAY, api_version=3, visibility=visibility)
    assert comment.visibility == visibility
    doc = comment.body
    assert isinstance(doc, dict) and doc["type"] == "doc" and doc["version"] == 1
    blocks = doc["content"]
    link_marks = [
        mark
        for node in blocks[0]["content"]
        for mark in node.get("marks", [])
        if mark["type"] == "link"
    ]
    assert link_marks == [{"type": "link", "attrs": {"href": LINK}}]
    code = [block for block in blocks if block["type"] == "codeBlock"]
    assert code == [
        {"type": "codeBlock", "content": [{"type": "text", "text": "*bold* [x|http://y]"}]}
    ]
    assert "s-1" in json.dumps(doc)


def test_a_remote_link_is_keyed_by_project_and_session_and_never_carries_the_reporters_words() -> (
    None
):
    report = parse_event({"session_id": "s-1", "jira_issue": "BUG-1", "description": "d" * 400})
    link = jira_comments.remote_link(report, LINK, project_id=42)
    assert link.global_id == "posthog-replay:42:s-1"
    assert (link.url, link.title) == (LINK, "Session replay s-1")
    # Seen by everyone who can see the issue.
    assert link.summary == "PostHog project 42"


def test_the_note_says_how_long_the_recording_is_when_it_started_and_where_it_opens() -> None:
    from datetime import datetime, timezone

    facts = RecordingFacts(datetime(2026, 11, 26, 9, 12, 3, tzinfo=timezone.utc), 187, True)
    replay = rendering.Replay(LINK, facts, StartPoint(155, "reported"))
    note = zendesk_notes.note(event(), replay, public=False)
    assert "Recording: 3:07 long, started 2026-11-26 09:12 UTC, still recording" in note.plain_body
    assert "Opens at: 2:35, when the report was sent" in note.plain_body
    wiki = jira_comments.comment(event(), replay, api_version=2, visibility=None).body
    assert isinstance(wiki, str) and "Opens at: {{2\\:35, when the report was sent}}" in wiki
    adf = json.dumps(jira_comments.comment(event(), replay, api_version=3, visibility=None).body)
    assert "3:07 long" in adf and "when the report was sent" in adf


def test_the_no_recording_note_names_the_session_and_reasons_and_carries_no_link() -> None:
    from datetime import datetime, timezone

    until = datetime(2026, 11, 26, 9, 42, tzinfo=timezone.utc)
    report = event(description="It broke {{ticket.requester.email}}")
    page = rendering.posthog_session_page("https://us.posthog.com", 1, "s-1")
    assert page == "https://us.posthog.com/project/1/replay/s-1"
    note = zendesk_notes.missing_note(report, until, page, public=False)
    marker = rendering.dedupe_marker(page)
    assert marker in note.plain_body and marker in note.html_body
    assert "PostHog has no recording of session s-1" in note.plain_body
    assert "until 2026-11-26 09:42 UTC" in note.plain_body
    assert "ad or tracking blocker" in note.plain_body and "No link was posted" in note.plain_body
    assert "/embedded/" not in note.html_body + note.plain_body
    for version in (2, 3):
        body = jira_comments.missing_comment(
            report, until, page, api_version=version, visibility=None
        )
        # The marker survives each format as it is searched for: in the body as JSON.
        (form, *_) = jira_comments.markers(marker, api_version=version)
        assert form in json.dumps(body.body) and "/embedded/" not in json.dumps(body.body)


def test_a_page_opened_with_credentials_in_its_address_is_shown_without_them() -> None:
    report = parse_event(
        {
            "session_id": "s-1",
            "zendesk_ticket": 1,
            "page_url": "https://alice:s3cret@app.example.com/orders?id=7#top",
        }
    )
    note = zendesk_notes.note(report, REPLAY, public=False)
    jira_report = report.model_copy(update={"zendesk_ticket": None, "jira_issue": "BUG-1"})
    bodies = [
        note.html_body,
        note.plain_body,
        str(jira_comments.comment(jira_report, REPLAY, api_version=2, visibility=None).body),
        json.dumps(jira_comments.comment(jira_report, REPLAY, api_version=3, visibility=None).body),
    ]
    for body in bodies:
        assert "s3cret" not in body and "alice" not in body
    assert "https://app.example.com/orders?id=7#top" in note.plain_body
    assert rendering.without_credentials("https://[broken") == "https://[broken"
