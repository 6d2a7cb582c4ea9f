"""The Zendesk double over real HTTP (and through zenpy): error style, tickets, comments, tags."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from sandbox.doubles import ZendeskDouble
from tests.integration.sandbox.helpers import add_note, zd_session


def test_zendesk_error_styles(zendesk: ZendeskDouble) -> None:
    session = zd_session(zendesk)
    zendesk.retry_after_seconds = 3
    zendesk.fail_next("429")
    limited = session.put(f"{zendesk.url}/api/v2/tickets/101/tags.json", json={"tags": ["x"]})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json() == {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"}
    zendesk.retry_after_http_date = True
    zendesk.fail_next("429")
    dated = session.get(f"{zendesk.url}/api/v2/tickets/101.json")
    when = email.utils.parsedate_to_datetime(dated.headers["Retry-After"])
    assert when.timestamp() > time.time(), "an RFC 7231 HTTP date in the future"
    zendesk.fail_next("5xx")
    unavailable = session.get(f"{zendesk.url}/api/v2/tickets/101.json")
    assert unavailable.status_code == 503
    assert unavailable.json() == {"error": "ServiceUnavailable"}
    assert "Retry-After" not in unavailable.headers
    assert zendesk.ticket(101)["tags"] == ["checkout", "web"]  # type: ignore[index]
    unknown = session.get(f"{zendesk.url}/api/v2/nothing.json")
    assert unknown.status_code == 404 and unknown.json()["error"] == "InvalidEndpoint"


def test_zendesk_auth_failures(zendesk: ZendeskDouble) -> None:
    url = f"{zendesk.url}/api/v2/users/me.json"
    expected = {"error": "Couldn't authenticate you"}
    for auth in (
        None,
        (f"{zendesk.email}/token", "wrong"),
        (zendesk.email, zendesk.api_token),  # password-style, without "/token"
        ("other@sandbox.test/token", zendesk.api_token),
    ):
        response = requests.get(url, auth=auth, timeout=2)
        assert response.status_code == 401 and response.json() == expected
    bearer = requests.get(url, headers={"Authorization": "Bearer zd_sandbox_token"}, timeout=2)
    assert bearer.status_code == 401
    me = zd_session(zendesk).get(url)
    assert me.json() == {
        "user": {
            "id": 1,
            "email": "agent@sandbox.test",
            "role": "agent",
            "name": "Sandbox Agent",
            "active": True,
        }
    }


def test_zendesk_get_ticket(zendesk: ZendeskDouble) -> None:
    response = zd_session(zendesk).get(f"{zendesk.url}/api/v2/tickets/101.json")
    ticket = response.json()["ticket"]
    assert ticket["id"] == 101 and ticket["status"] == "open"
    assert ticket["subject"] == "Checkout button does nothing"
    assert ticket["tags"] == ["checkout", "web"] and "comments" not in ticket
    missing = zd_session(zendesk).get(f"{zendesk.url}/api/v2/tickets/999.json")
    assert missing.status_code == 404
    assert missing.json() == {"error": "RecordNotFound", "description": "Not found"}
    [description] = zendesk.comments(101)
    assert description["public"] is True and description["type"] == "Comment"


def test_zendesk_comment_is_public_unless_public_false(zendesk: ZendeskDouble) -> None:
    omitted = add_note(zendesk, 101, html_body="<p>Replay: <a href='https://x'>watch</a></p>")
    assert omitted.status_code == 200
    internal = add_note(zendesk, 101, body="Replay: https://x", public=False)
    assert internal.status_code == 200
    comments = zendesk.comments(101)
    assert [c["public"] for c in comments] == [True, True, False], "omitted public => PUBLIC"
    derived = comments[1]
    assert derived["body"] == "Replay: watch" and derived["plain_body"] == "Replay: watch"
    assert derived["html_body"] == "<p>Replay: <a href='https://x'>watch</a></p>"
    assert comments[2]["html_body"] == "<p>Replay: https://x</p>"
    assert comments[2]["author_id"] == 1 and comments[2]["created_at"].endswith("Z")
    audit = internal.json()["audit"]
    [event] = [e for e in audit["events"] if e["type"] == "Comment"]
    assert event["public"] is False and event["id"] == comments[2]["id"]
    assert internal.json()["ticket"]["id"] == 101


def test_zendesk_tags_in_update_replace_all(zendesk: ZendeskDouble) -> None:
    response = zd_session(zendesk).put(
        f"{zendesk.url}/api/v2/tickets/101.json",
        json={"ticket": {"tags": ["replay_attached"], "status": "pending"}},
    )
    assert response.status_code == 200
    ticket = zendesk.ticket(101)
    assert ticket is not None
    assert ticket["tags"] == ["replay_attached"], "the trap: checkout/web are gone"
    assert ticket["status"] == "pending"
    changes = {e["field_name"]: e for e in response.json()["audit"]["events"]}
    assert changes["tags"]["previous_value"] == ["checkout", "web"]


def test_zendesk_tags_endpoint_add_set_remove(zendesk: ZendeskDouble) -> None:
    session = zd_session(zendesk)
    url = f"{zendesk.url}/api/v2/tickets/101/tags.json"
    added = session.put(url, json={"tags": ["web", "Replay_Attached"]})
    assert added.json() == {"tags": ["checkout", "web", "replay_attached"]}
    removed = session.delete(url, json={"tags": ["web"]})
    assert removed.json() == {"tags": ["checkout", "replay_attached"]}
    replaced = session.post(url, json={"tags": ["only"]})
    assert replaced.json() == {"tags": ["only"]}
    assert session.get(url).json() == {"tags": ["only"]}
    assert zendesk.ticket(101)["tags"] == ["only"]  # type: ignore[index]
    bad = session.put(url, json={"tags": "not a list of tags"})
    assert bad.status_code == 200  # a single string is one tag list, as Zendesk splits it
    assert session.put(url, json={"nope": 1}).status_code == 400


def test_zendesk_closed_ticket_refuses_updates(zendesk: ZendeskDouble) -> None:
    expected = {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
    }
    note = add_note(zendesk, 106, body="x", public=False)
    assert note.status_code == 422 and note.json() == expected
    tags = zd_session(zendesk).put(
        f"{zendesk.url}/api/v2/tickets/106/tags.json", json={"tags": ["x"]}
    )
    assert tags.status_code == 422 and tags.json() == expected
    assert len(zendesk.comments(106)) == 1
    # The documented remedy: a follow-up ticket.
    follow_up = zd_session(zendesk).post(
        f"{zendesk.url}/api/v2/tickets.json",
        json={
            "ticket": {
                "subject": "Follow-up",
                "via_followup_source_id": 106,
                "comment": {"body": "replay", "public": False},
            }
        },
    )
    assert follow_up.status_code == 201
    created = follow_up.json()["ticket"]
    assert created["via_followup_source_id"] == 106 and created["id"] not in (101, 106)
    assert zendesk.comments(created["id"])[0]["public"] is False


def test_zendesk_safe_update_conflict(zendesk: ZendeskDouble) -> None:
    session = zd_session(zendesk)
    stamp = session.get(f"{zendesk.url}/api/v2/tickets/101.json").json()["ticket"]["updated_at"]
    fresh = session.put(
        f"{zendesk.url}/api/v2/tickets/101.json",
        json={"ticket": {"safe_update": True, "updated_stamp": stamp, "comment": {"body": "a"}}},
    )
    assert fresh.status_code == 200
    assert fresh.json()["ticket"]["updated_at"] != stamp
    stale = session.put(
        f"{zendesk.url}/api/v2/tickets/101.json",
        json={"ticket": {"safe_update": True, "updated_stamp": stamp, "comment": {"body": "b"}}},
    )
    assert stale.status_code == 409 and stale.json()["error"] == "UpdateConflict"
    assert [c["body"] for c in zendesk.comments(101)][1:] == ["a"]


def test_zendesk_malformed_and_invalid_updates(zendesk: ZendeskDouble) -> None:
    session = zd_session(zendesk)
    url = f"{zendesk.url}/api/v2/tickets/101.json"
    malformed = session.put(url, data=b'{"ticket": {', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "InvalidJSON"
    assert session.put(url, json={"comment": {"body": "x"}}).status_code == 400
    blank = session.put(url, json={"ticket": {"comment": {"body": ""}}})
    assert blank.status_code == 422
    assert session.put(f"{zendesk.url}/api/v2/tickets/999.json", json={"ticket": {}}).json() == {
        "error": "RecordNotFound",
        "description": "Not found",
    }
    assert len(zendesk.comments(101)) == 1


def test_zendesk_comment_pagination(zendesk: ZendeskDouble) -> None:
    for index in range(6):
        assert add_note(zendesk, 101, body=f"note {index}", public=False).status_code == 200
    session = zd_session(zendesk)
    everything = session.get(f"{zendesk.url}/api/v2/tickets/101/comments.json").json()
    assert everything["count"] == 7 and len(everything["comments"]) == 7
    assert everything["next_page"] is None and everything["previous_page"] is None
    bodies: list[str] = []
    url: str | None = f"{zendesk.url}/api/v2/tickets/101/comments.json?per_page=3"
    pages = 0
    while url:
        page = session.get(url).json()
        assert page["count"] == 7
        bodies += [c["body"] for c in page["comments"]]
        url = page["next_page"]
        if url:
            assert url.startswith(f"{zendesk.url}/api/v2/tickets/101/comments.json?page=")
        pages += 1
    assert pages == 3
    assert bodies[1:] == [f"note {i}" for i in range(6)]
    last = session.get(f"{zendesk.url}/api/v2/tickets/101/comments.json?page=3&per_page=3").json()
    assert last["previous_page"].endswith("page=2&per_page=3") and len(last["comments"]) == 1


def test_zendesk_auto_create_tickets() -> None:
    with ZendeskDouble(auto_create_tickets=True) as zendesk:
        assert add_note(zendesk, 424242, body="load", public=False).status_code == 200
        ticket = zendesk.ticket(424242)
        assert ticket is not None and ticket["status"] == "open"
        assert ticket["comments"][-1]["body"] == "load"
    with ZendeskDouble() as zendesk:
        assert add_note(zendesk, 424242, body="load", public=False).status_code == 404


def test_zendesk_through_zenpy(zendesk: ZendeskDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    from zenpy import Zenpy
    from zenpy.lib.api_objects import Comment

    # zenpy hard-codes https; these variables are its documented escape hatch.
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", zendesk.url.split("//", 1)[1])
    client = Zenpy(
        subdomain="sandbox",
        email=zendesk.email,
        token=zendesk.api_token,
        session=requests.Session(),
        disable_cache=True,
    )
    ticket = client.tickets(id=101)
    ticket.comment = Comment(html_body="<p>replay</p>", public=False)
    client.tickets.update(ticket)
    client.tickets.add_tags(101, ["replay_attached"])
    assert zendesk.comments(101)[-1]["public"] is False
    assert zendesk.ticket(101)["tags"] == ["checkout", "web", "replay_attached"]  # type: ignore[index]
    assert zendesk.handler_errors == []
