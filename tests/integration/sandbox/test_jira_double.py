"""The Jira double over real HTTP (and through the jira library): error style, issues,
comments, remote links and the OpenAPI checks."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.doubles import JiraDouble
from tests.integration.sandbox.helpers import ADF, jira_session


def test_jira_error_styles(jira: JiraDouble) -> None:
    session = jira_session(jira)
    jira.retry_after_seconds = 5
    jira.fail_next("429")
    limited = session.post(f"{jira.url}/rest/api/2/issue/BUG-1/comment", json={"body": "x"})
    assert limited.status_code == 429
    assert limited.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    assert limited.headers["Retry-After"] == "5"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Limit"]) > 0
    assert limited.headers["X-RateLimit-Reset"].startswith("20")
    jira.fail_next("5xx")
    unavailable = session.get(f"{jira.url}/rest/api/2/issue/BUG-1")
    assert unavailable.status_code == 503
    assert unavailable.json() == {"errorMessages": ["Service unavailable"], "errors": {}}
    assert "Retry-After" not in unavailable.headers
    jira.retry_after_on_503 = 2
    jira.fail_next("5xx")
    assert session.get(f"{jira.url}/rest/api/2/issue/BUG-1").headers["Retry-After"] == "2"
    assert jira.issue("BUG-1")["comments"] == []  # type: ignore[index]
    unknown = session.get(f"{jira.url}/rest/api/2/nothing")
    assert unknown.status_code == 404 and "errorMessages" in unknown.json()


def test_jira_auth_failures(jira: JiraDouble, jira_dc: JiraDouble) -> None:
    expected = {
        "errorMessages": [
            "You are not authenticated. Authentication required to perform this operation."
        ],
        "errors": {},
    }
    cloud_url = f"{jira.url}/rest/api/3/myself"
    attempts: list[dict[str, Any]] = [
        {},
        {"auth": (jira.email, "wrong")},
        {"headers": {"Authorization": f"Bearer {jira.personal_access_token}"}},  # no PATs on Cloud
    ]
    for kwargs in attempts:
        response = requests.get(cloud_url, timeout=2, **kwargs)
        assert response.status_code == 401 and response.json() == expected
    me = jira_session(jira).get(cloud_url).json()
    assert me["emailAddress"] == "dev@sandbox.test" and me["displayName"] == "Sandbox Dev"
    assert me["accountId"]
    dc_url = f"{jira_dc.url}/rest/api/2/myself"
    basic = requests.get(dc_url, auth=(jira_dc.email, jira_dc.api_token), timeout=2)
    assert basic.status_code == 401 and basic.json() == expected
    assert jira_session(jira_dc).get(dc_url).status_code == 200
    # serverInfo is readable anonymously but bad credentials are still refused.
    assert requests.get(f"{jira.url}/rest/api/2/serverInfo", timeout=2).status_code == 200
    assert (
        requests.get(
            f"{jira.url}/rest/api/2/serverInfo", auth=(jira.email, "wrong"), timeout=2
        ).status_code
        == 401
    )


def test_jira_server_info_per_deployment(jira: JiraDouble, jira_dc: JiraDouble) -> None:
    cloud = jira_session(jira).get(f"{jira.url}/rest/api/2/serverInfo").json()
    assert cloud["deploymentType"] == "Cloud" and cloud["version"] == "1001.0.0-SNAPSHOT"
    assert cloud["baseUrl"] == jira.url and cloud["versionNumbers"] == [1001, 0, 0]
    dc = jira_session(jira_dc).get(f"{jira_dc.url}/rest/api/2/serverInfo").json()
    assert dc["deploymentType"] == "Server" and dc["version"] == "9.12.0"
    assert dc["versionNumbers"] == [9, 12, 0]


def test_jira_issue_lookup(jira: JiraDouble, jira_dc: JiraDouble) -> None:
    not_found = {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }
    for version in ("2", "3"):
        found = jira_session(jira).get(f"{jira.url}/rest/api/{version}/issue/BUG-1").json()
        assert found["key"] == "BUG-1" and found["fields"]["summary"] == "Checkout broken"
        by_id = jira_session(jira).get(f"{jira.url}/rest/api/{version}/issue/{found['id']}")
        assert by_id.json()["key"] == "BUG-1"
        missing = jira_session(jira).get(f"{jira.url}/rest/api/{version}/issue/BUG-404")
        assert missing.status_code == 404 and missing.json() == not_found
    assert jira_session(jira_dc).get(f"{jira_dc.url}/rest/api/2/issue/BUG-1").status_code == 200
    v3_on_dc = jira_session(jira_dc).get(f"{jira_dc.url}/rest/api/3/issue/BUG-1")
    assert v3_on_dc.status_code == 404
    assert (
        jira_session(jira_dc)
        .post(f"{jira_dc.url}/rest/api/3/issue/BUG-1/comment", json={"body": ADF})
        .status_code
        == 404
    )
    with pytest.raises(ValueError):
        jira.add_issue("not-a-key")


def test_jira_comment_body_shapes_per_version(jira: JiraDouble) -> None:
    session = jira_session(jira)
    v2 = f"{jira.url}/rest/api/2/issue/BUG-1/comment"
    v3 = f"{jira.url}/rest/api/3/issue/BUG-1/comment"
    invalid = {"errorMessages": [], "errors": {"comment": "Comment body is not valid!"}}
    as_string_on_v3 = session.post(v3, json={"body": "[Watch replay|https://ph.test/shared/t]"})
    assert as_string_on_v3.status_code == 400 and as_string_on_v3.json() == invalid
    as_adf_on_v2 = session.post(v2, json={"body": ADF})
    assert as_adf_on_v2.status_code == 400 and as_adf_on_v2.json() == invalid
    broken_adf = {"type": "doc", "version": 1, "content": [{"type": "text", "text": ""}]}
    assert session.post(v3, json={"body": broken_adf}).status_code == 400
    assert jira.issue("BUG-1")["comments"] == []  # type: ignore[index]

    wiki = session.post(v2, json={"body": "[Watch replay|https://ph.test/shared/t]"})
    assert wiki.status_code == 201
    created = wiki.json()
    assert created["body"] == "[Watch replay|https://ph.test/shared/t]"
    assert created["id"] and created["self"].endswith(f"/comment/{created['id']}")
    assert created["author"]["displayName"] == "Sandbox Dev" and created["created"]
    adf = session.post(
        v3, json={"body": ADF, "visibility": {"type": "role", "value": "Developers"}}
    )
    assert adf.status_code == 201
    assert adf.json()["body"] == ADF
    assert adf.json()["visibility"] == {"type": "role", "value": "Developers"}
    stored = jira.issue("BUG-1")["comments"]  # type: ignore[index]
    assert [c["api_version"] for c in stored] == ["2", "3"]
    assert stored[1]["body"] == ADF and stored[1]["visibility"]["value"] == "Developers"
    # Each API version reads the other's comments in its own representation.
    as_v2 = session.get(v2).json()["comments"]
    assert as_v2[1]["body"] == "Session replay: [watch|https://ph.test/shared/t]"
    as_v3 = session.get(v3).json()["comments"]
    link = as_v3[0]["body"]["content"][0]["content"][0]
    assert link["text"] == "Watch replay"
    assert link["marks"][0]["attrs"]["href"] == "https://ph.test/shared/t"


def test_jira_comment_visibility_is_checked(jira: JiraDouble) -> None:
    url = f"{jira.url}/rest/api/2/issue/BUG-1/comment"
    session = jira_session(jira)
    unknown_role = session.post(
        url, json={"body": "x", "visibility": {"type": "role", "value": "X"}}
    )
    assert unknown_role.status_code == 400 and "commentLevel" in unknown_role.json()["errors"]
    bad_type = session.post(url, json={"body": "x", "visibility": {"type": "user", "value": "a"}})
    assert bad_type.status_code == 400
    group = session.post(
        url, json={"body": "x", "visibility": {"type": "group", "value": "jira-software-users"}}
    )
    assert group.status_code == 201


def test_jira_comment_pagination(jira: JiraDouble) -> None:
    session = jira_session(jira)
    url = f"{jira.url}/rest/api/2/issue/BUG-1/comment"
    for index in range(7):
        assert session.post(url, json={"body": f"c{index}"}).status_code == 201
    default = session.get(url).json()
    assert default["startAt"] == 0 and default["maxResults"] == 50 and default["total"] == 7
    page = session.get(url, params={"startAt": 5, "maxResults": 3}).json()
    assert page["startAt"] == 5 and page["maxResults"] == 3 and page["total"] == 7
    assert [c["body"] for c in page["comments"]] == ["c5", "c6"]


def test_jira_remote_link_upsert(jira: JiraDouble) -> None:
    session = jira_session(jira)
    url = f"{jira.url}/rest/api/3/issue/BUG-1/remotelink"
    link = {
        "globalId": "posthog-replay:sess-1",
        "application": {"type": "com.posthog", "name": "PostHog"},
        "relationship": "session replay",
        "object": {
            "url": "https://ph.test/shared/t1",
            "title": "Session replay",
            "icon": {"url16x16": "https://ph.test/favicon.ico", "title": "PostHog"},
        },
    }
    created = session.post(url, json=link)
    assert created.status_code == 201
    link_id = created.json()["id"]
    assert isinstance(link_id, int)
    assert created.json()["self"].endswith(f"/remotelink/{link_id}")
    # Same globalId: an update (200), not a second link; omitted fields become null.
    update = {
        "globalId": "posthog-replay:sess-1",
        "object": {"url": "https://ph.test/shared/t2", "title": "Session replay (2)"},
    }
    updated = session.post(url, json=update)
    assert updated.status_code == 200 and updated.json()["id"] == link_id
    [stored] = session.get(url).json()
    assert stored["id"] == link_id and stored["globalId"] == "posthog-replay:sess-1"
    assert stored["object"] == {"url": "https://ph.test/shared/t2", "title": "Session replay (2)"}
    assert stored["application"] is None and stored["relationship"] is None
    # Without a globalId every POST creates another link (jira's add_simple_link trap).
    plain = {"object": {"url": "https://ph.test/shared/t3", "title": "Replay"}}
    assert session.post(url, json=plain).status_code == 201
    assert session.post(url, json=plain).status_code == 201
    assert len(session.get(url).json()) == 3
    single = session.get(url, params={"globalId": "posthog-replay:sess-1"}).json()
    assert single["id"] == link_id
    assert session.get(f"{url}/{link_id}").json()["object"]["title"] == "Session replay (2)"
    assert jira.schema_violations == []


def test_jira_remote_link_requires_url_and_title(jira: JiraDouble) -> None:
    url = f"{jira.url}/rest/api/2/issue/BUG-1/remotelink"
    response = jira_session(jira).post(url, json={"object": {"url": "https://ph.test/x"}})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {"title": "'title' is required."}
    assert any("'title' is a required property" in m for m in body["errorMessages"])
    assert jira.issue("BUG-1")["remote_links"] == []  # type: ignore[index]
    assert len(jira.schema_violations) == 1
    assert jira.schema_violations[0]["operation"] == "RemoteIssueLinkRequest"


def test_jira_openapi_validation_can_be_switched_off() -> None:
    bad = {"object": {"url": "https://ph.test/x", "title": 42}, "application": "PostHog"}
    with JiraDouble() as jira:
        jira.add_issue("BUG-1")
        response = jira_session(jira).post(
            f"{jira.url}/rest/api/2/issue/BUG-1/remotelink", json=bad
        )
        assert response.status_code == 400
        problems = jira.schema_violations[0]["problems"]
        assert "$.object.title: 42 is not of type 'string'" in problems
        assert "$.application: \"PostHog\" is not of type 'object'" in problems
        assert response.json()["errorMessages"] == problems
        comment = jira_session(jira).post(
            f"{jira.url}/rest/api/2/issue/BUG-1/comment",
            json={"body": "x", "visibility": {"type": "everyone", "value": "x"}},
        )
        assert comment.status_code == 400
        assert jira.schema_violations[1]["operation"] == "Comment"
    with JiraDouble(validate_openapi=False) as jira:
        jira.add_issue("BUG-1")
        response = jira_session(jira).post(
            f"{jira.url}/rest/api/2/issue/BUG-1/remotelink", json=bad
        )
        assert response.status_code == 201
        assert jira.schema_violations == []


def test_jira_applinks_and_auto_create() -> None:
    with JiraDouble(auto_create_issues=True) as jira:
        session = jira_session(jira)
        assert session.get(f"{jira.url}/rest/applinks/latest/listApplicationlinks").json() == []
        response = session.post(f"{jira.url}/rest/api/2/issue/LOAD-77/comment", json={"body": "x"})
        assert response.status_code == 201
        assert jira.issue("LOAD-77") is not None
        assert session.get(f"{jira.url}/rest/api/2/issue/not-a-key").status_code == 404


def test_jira_through_the_jira_library(jira: JiraDouble) -> None:
    from jira import JIRA

    client = JIRA(
        server=jira.url, basic_auth=(jira.email, jira.api_token), max_retries=0, timeout=5
    )
    client.add_comment("BUG-1", "[Watch replay|https://ph.test/shared/t]")
    client.add_remote_link(
        "BUG-1", {"url": "https://ph.test/shared/t", "title": "Replay"}, globalId="g"
    )
    client.add_remote_link(
        "BUG-1", {"url": "https://ph.test/shared/u", "title": "Replay"}, globalId="g"
    )
    links = client.remote_links("BUG-1")
    assert [link.object.url for link in links] == ["https://ph.test/shared/u"]
    # add_remote_link asks for application links first (and caches the answer).
    assert len(jira.calls("GET", r"/rest/applinks/latest/listApplicationlinks")) == 1
    assert jira.schema_violations == [] and jira.handler_errors == []


# ----------------------------------------------------------------- deleting remote links


def add_link(jira: JiraDouble, global_id: str, url: str, key: str = "BUG-1") -> int:
    response = jira_session(jira).post(
        f"{jira.url}/rest/api/2/issue/{key}/remotelink",
        json={"globalId": global_id, "object": {"url": url, "title": "Session replay"}},
    )
    assert response.status_code in (200, 201)
    link_id: int = response.json()["id"]
    return link_id


NOT_FOUND_ISSUE = {
    "errorMessages": ["Issue does not exist or you do not have permission to see it."],
    "errors": {},
}
NO_LINK = {"errorMessages": ["No link found."], "errors": {}}


@pytest.mark.parametrize("version", ["2", "3"])
def test_jira_remote_link_delete_by_global_id(jira: JiraDouble, version: str) -> None:
    session = jira_session(jira)
    url = f"{jira.url}/rest/api/{version}/issue/BUG-1/remotelink"
    # Reserved characters in the globalId travel url-encoded (requests encodes params).
    global_id = "system=https://ph.test/replay&id=sess-1 x"
    add_link(jira, global_id, "https://ph.test/shared/t1")
    add_link(jira, "posthog-replay:other", "https://ph.test/shared/t2")
    deleted = session.delete(url, params={"globalId": global_id})
    assert deleted.status_code == 204 and deleted.content == b""
    assert "%3D" in deleted.request.url and "%26" in deleted.request.url  # type: ignore[operator]
    assert [link["globalId"] for link in session.get(url).json()] == ["posthog-replay:other"]
    assert session.get(url, params={"globalId": global_id}).status_code == 404
    # Not idempotent: Jira answers 404 for a globalId it has no link for.
    again = session.delete(url, params={"globalId": global_id})
    assert again.status_code == 404 and again.json() == NO_LINK
    missing_issue = session.delete(
        f"{jira.url}/rest/api/{version}/issue/BUG-404/remotelink", params={"globalId": "g"}
    )
    assert missing_issue.status_code == 404 and missing_issue.json() == NOT_FOUND_ISSUE
    no_global_id = session.delete(url)
    assert no_global_id.status_code == 400 and no_global_id.json()["errorMessages"]
    assert len(jira.issue("BUG-1")["remote_links"]) == 1  # type: ignore[index]
    unauthenticated = requests.delete(url, params={"globalId": "posthog-replay:other"}, timeout=2)
    assert unauthenticated.status_code == 401
    assert len(jira.calls("DELETE", r"/remotelink$")) == 5
    assert jira.handler_errors == []


def test_jira_remote_link_delete_by_id(jira: JiraDouble, jira_dc: JiraDouble) -> None:
    session = jira_session(jira)
    jira.add_issue("BUG-2")
    first = add_link(jira, "g1", "https://ph.test/shared/t1")
    second = add_link(jira, "g2", "https://ph.test/shared/t2")
    elsewhere = add_link(jira, "g3", "https://ph.test/shared/t3", key="BUG-2")
    url = f"{jira.url}/rest/api/3/issue/BUG-1/remotelink"
    assert session.delete(f"{url}/{first}").status_code == 204
    assert [link["id"] for link in session.get(url).json()] == [second]
    gone = session.delete(f"{url}/{first}")
    assert gone.status_code == 404 and gone.json() == NO_LINK
    # A link of another issue: 400, and it stays.
    foreign = session.delete(f"{url}/{elsewhere}")
    assert foreign.status_code == 400 and foreign.json()["errorMessages"]
    assert len(jira.issue("BUG-2")["remote_links"]) == 1  # type: ignore[index]
    unknown_issue = session.delete(f"{jira.url}/rest/api/3/issue/BUG-404/remotelink/{second}")
    assert unknown_issue.status_code == 404 and unknown_issue.json() == NOT_FOUND_ISSUE
    # Data Center: v2 only.
    dc_link = add_link(jira_dc, "g", "https://ph.test/shared/dc")
    dc = jira_session(jira_dc)
    dc_v3 = f"{jira_dc.url}/rest/api/3/issue/BUG-1/remotelink/{dc_link}"
    assert dc.delete(dc_v3).status_code == 404
    dc_v2 = f"{jira_dc.url}/rest/api/2/issue/BUG-1/remotelink/{dc_link}"
    assert dc.delete(dc_v2).status_code == 204
    assert jira_dc.issue("BUG-1")["remote_links"] == []  # type: ignore[index]


def test_jira_remote_link_delete_through_the_jira_library(jira: JiraDouble) -> None:
    from jira import JIRA

    client = JIRA(
        server=jira.url, basic_auth=(jira.email, jira.api_token), max_retries=0, timeout=5
    )
    client.add_remote_link(
        "BUG-1", {"url": "https://ph.test/shared/t", "title": "Replay"}, globalId="g"
    )
    [link] = client.remote_links("BUG-1")
    link.delete()
    assert client.remote_links("BUG-1") == []


# ----------------------------------------------------------------- Jira Service Management

INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]


def test_jira_service_desk_issue_exposes_its_project_type(jira: JiraDouble) -> None:
    jira.add_issue("HELP-7", summary="Cannot pay", service_desk=True)
    session = jira_session(jira)
    for version in ("2", "3"):
        desk = session.get(f"{jira.url}/rest/api/{version}/issue/HELP-7").json()
        assert desk["fields"]["project"] == {"key": "HELP", "projectTypeKey": "service_desk"}
        software = session.get(f"{jira.url}/rest/api/{version}/issue/BUG-1").json()
        assert software["fields"]["project"] == {"key": "BUG", "projectTypeKey": "software"}
    assert jira.issue("HELP-7")["service_desk"] is True  # type: ignore[index]
    assert jira.issue("BUG-1")["service_desk"] is False  # type: ignore[index]


def test_jira_service_desk_comment_is_public_unless_marked_internal(jira: JiraDouble) -> None:
    jira.add_issue("HELP-8", service_desk=True)
    session = jira_session(jira)
    v2 = f"{jira.url}/rest/api/2/issue/HELP-8/comment"
    v3 = f"{jira.url}/rest/api/3/issue/HELP-8/comment"
    public = session.post(v2, json={"body": "[Watch replay|https://ph.test/shared/t]"})
    assert public.status_code == 201 and public.json()["jsdPublic"] is True
    internal = session.post(v3, json={"body": ADF, "properties": INTERNAL})
    assert internal.status_code == 201 and internal.json()["jsdPublic"] is False
    # Only a JSON true makes it internal.
    as_string = [{"key": "sd.public.comment", "value": {"internal": "true"}}]
    loose = session.post(v2, json={"body": "x", "properties": as_string})
    assert loose.status_code == 201 and loose.json()["jsdPublic"] is True
    explicit_public = [{"key": "sd.public.comment", "value": {"internal": False}}]
    assert session.post(v2, json={"body": "y", "properties": explicit_public}).status_code == 201
    stored = jira.issue("HELP-8")["comments"]  # type: ignore[index]
    assert [c["internal"] for c in stored] == [False, True, False, False]
    assert stored[1]["properties"] == INTERNAL
    listed = session.get(v2).json()["comments"]
    assert [c["jsdPublic"] for c in listed] == [True, False, True, True]
    assert jira.schema_violations == []


def test_jira_software_issue_comments_are_never_internal(jira: JiraDouble) -> None:
    session = jira_session(jira)
    url = f"{jira.url}/rest/api/2/issue/BUG-1/comment"
    response = session.post(url, json={"body": "x", "properties": INTERNAL})
    assert response.status_code == 201 and response.json()["jsdPublic"] is True
    [stored] = jira.issue("BUG-1")["comments"]  # type: ignore[index]
    assert stored["internal"] is False and stored["properties"] == INTERNAL


def test_jira_comment_properties_are_schema_checked(jira: JiraDouble) -> None:
    jira.add_issue("HELP-9", service_desk=True)
    url = f"{jira.url}/rest/api/2/issue/HELP-9/comment"
    not_a_list = jira_session(jira).post(url, json={"body": "x", "properties": {"internal": True}})
    assert not_a_list.status_code == 400
    assert jira.schema_violations[0]["operation"] == "Comment"
    extra_field = [{"key": "sd.public.comment", "value": {"internal": True}, "scope": "x"}]
    assert (
        jira_session(jira).post(url, json={"body": "x", "properties": extra_field}).status_code
        == 400
    )
    assert jira.issue("HELP-9")["comments"] == []  # type: ignore[index]
