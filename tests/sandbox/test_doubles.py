"""The sandbox doubles, exercised over real HTTP with `requests` (and the vendors' own client
libraries where our worker uses them)."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.app import Sandbox
from sandbox.doubles import FAULT_KINDS, JiraDouble, PostHogDouble, ZendeskDouble
from sandbox.doubles.base import Double, Request, Response, json_response

ADF = {
    "type": "doc",
    "version": 1,
    "content": [
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "Session replay: "},
                {
                    "type": "text",
                    "text": "watch",
                    "marks": [{"type": "link", "attrs": {"href": "https://ph.test/shared/t"}}],
                },
            ],
        }
    ],
}


# --------------------------------------------------------------------------- fixtures


class EchoDouble(Double):
    """The base class alone, with one counting write route."""

    def __init__(self) -> None:
        super().__init__()
        self.applied = 0
        self.route("POST", r"/things", self._post)
        self.route("GET", r"/things/(?P<id>\d+)", self._get)

    def _post(self, request: Request) -> Response:
        self.applied += 1
        return json_response(201, {"applied": self.applied})

    def _get(self, request: Request) -> Response:
        return json_response(200, {"id": request.params["id"], "q": request.query})


@pytest.fixture
def echo() -> Iterator[EchoDouble]:
    with EchoDouble() as double:
        yield double


@pytest.fixture
def posthog() -> Iterator[PostHogDouble]:
    keys = {
        "phx_sandbox_key": {
            "sharing_configuration:read",
            "sharing_configuration:write",
            "session_recording:read",
            "project:read",
        },
        "phx_read_only": {"sharing_configuration:read"},
    }
    with PostHogDouble(api_keys=keys) as double:
        yield double


@pytest.fixture
def zendesk() -> Iterator[ZendeskDouble]:
    with ZendeskDouble() as double:
        double.add_ticket(101, subject="Checkout button does nothing", tags=["checkout", "web"])
        double.add_ticket(106, subject="Old invoice question", status="closed")
        yield double


@pytest.fixture
def jira() -> Iterator[JiraDouble]:
    with JiraDouble() as double:
        double.add_issue("BUG-1", summary="Checkout broken")
        yield double


@pytest.fixture
def jira_dc() -> Iterator[JiraDouble]:
    with JiraDouble(deployment="datacenter") as double:
        double.add_issue("BUG-1", summary="Checkout broken")
        yield double


def ph_session(key: str = "phx_sandbox_key") -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def zd_session(double: ZendeskDouble) -> requests.Session:
    session = requests.Session()
    session.auth = (f"{double.email}/token", double.api_token)
    return session


def jira_session(double: JiraDouble) -> requests.Session:
    session = requests.Session()
    if double.cloud:
        session.auth = (double.email, double.api_token)
    else:
        session.headers["Authorization"] = f"Bearer {double.personal_access_token}"
    return session


def share_url(double: PostHogDouble, sid: str, project: int | str = 1) -> str:
    return f"{double.url}/api/projects/{project}/session_recordings/{sid}/sharing"


def add_note(double: ZendeskDouble, ticket: int, **comment: Any) -> requests.Response:
    return zd_session(double).put(
        f"{double.url}/api/v2/tickets/{ticket}.json", json={"ticket": {"comment": comment}}
    )


# --------------------------------------------------------------------------- base: lifecycle


def test_start_stop_restart_and_context_manager() -> None:
    double = EchoDouble()
    with pytest.raises(RuntimeError):
        _ = double.url
    url = double.start()
    assert url == double.url and url.startswith("http://127.0.0.1:")
    assert double.start() == url  # idempotent
    assert requests.get(f"{url}/things/1", timeout=2).json()["id"] == "1"
    double.stop()
    double.stop()  # idempotent
    assert not double.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/things/1", timeout=2)
    # Restarting keeps the port, so configured clients reach it again (an outage, then recovery).
    assert double.start() == url
    assert requests.get(f"{url}/things/2", timeout=2).status_code == 200
    double.stop()
    with EchoDouble() as other:
        assert other.running
    assert not other.running


def test_keep_alive_connections_are_reused_and_closed_by_stop(echo: EchoDouble) -> None:
    session = requests.Session()
    for _ in range(3):
        assert session.post(f"{echo.url}/things", timeout=2).status_code == 201
    ports = {r.client_port for r in echo.requests}
    assert len(ports) == 1, "a requests.Session must reuse one HTTP/1.1 connection"
    assert echo.applied == 3
    echo.stop()
    # The pooled connection was shut down too: no handler thread keeps serving it.
    with pytest.raises(requests.ConnectionError):
        session.post(f"{echo.url}/things", timeout=2)
    assert echo.applied == 3


def test_recording_routing_and_query(echo: EchoDouble) -> None:
    requests.get(f"{echo.url}/things/7?a=1&b=two", headers={"X-Trace": "abc"}, timeout=2)
    requests.post(f"{echo.url}/things", json={"k": "v"}, timeout=2)
    missing = requests.get(f"{echo.url}/nope", timeout=2)
    wrong_method = requests.delete(f"{echo.url}/things", timeout=2)
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert [r.method for r in echo.requests] == ["GET", "POST", "GET", "DELETE"]
    get = echo.calls("GET", r"^/things/\d+$")[0]
    assert get.query == {"a": "1", "b": "two"}
    assert get.headers["x-trace"] == "abc" and get.headers["X-TRACE"] == "abc"
    assert get.status == 200 and get.fault is None and get.time <= time.time()
    post = echo.calls(method="post")[0]
    assert post.json == {"k": "v"} and post.body == b'{"k": "v"}'
    assert len(echo.calls(path_regex="things")) == 3
    echo.reset_requests()
    assert echo.requests == [] and echo.calls() == []
    assert echo.handler_errors == []


def test_latency_is_applied_and_changeable_at_runtime(echo: EchoDouble) -> None:
    echo.latency = 0.25
    started = time.monotonic()
    requests.get(f"{echo.url}/things/1", timeout=2)
    assert time.monotonic() - started >= 0.25
    echo.latency = 0.0
    started = time.monotonic()
    requests.get(f"{echo.url}/things/1", timeout=2)
    assert time.monotonic() - started < 0.2


# --------------------------------------------------------------------------- base: faults


def test_reset_fault_raises_connection_error_and_is_not_applied(echo: EchoDouble) -> None:
    echo.fail_next("reset")
    with pytest.raises(requests.ConnectionError) as raised:
        requests.post(f"{echo.url}/things", timeout=2)
    assert "Connection reset by peer" in str(raised.value), "a TCP RST, not a clean close"
    assert echo.applied == 0
    [record] = echo.requests
    assert record.fault == "reset" and record.status is None
    # Only the next request was affected.
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201


def test_lost_response_applies_the_write_then_resets(echo: EchoDouble) -> None:
    echo.fail_next("lost_response")
    with pytest.raises(requests.ConnectionError) as raised:
        requests.post(f"{echo.url}/things", timeout=2)
    assert "Connection reset by peer" in str(raised.value)
    assert echo.applied == 1, "the server applied it although the client saw an error"
    assert echo.requests[0].fault == "lost_response"


def test_slow_fault_times_the_client_out_after_applying(echo: EchoDouble) -> None:
    echo.slow_seconds = 0.6
    echo.fail_next("slow")
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{echo.url}/things", timeout=(2, 0.2))
    assert time.monotonic() - started < 0.55
    assert echo.applied == 1
    # A patient client gets the normal answer, late.
    echo.fail_next("slow")
    started = time.monotonic()
    response = requests.post(f"{echo.url}/things", timeout=3)
    assert response.status_code == 201 and response.json() == {"applied": 2}
    assert time.monotonic() - started >= 0.6


def test_5xx_429_and_500_are_not_applied(echo: EchoDouble) -> None:
    for kind, status in (("5xx", 503), ("429", 429), ("500", 500)):
        echo.fail_next(kind)
        assert requests.post(f"{echo.url}/things", timeout=2).status_code == status
    assert echo.applied == 0
    assert [r.fault for r in echo.requests] == ["5xx", "429", "500"]


def test_fail_next_count_and_filters(echo: EchoDouble) -> None:
    echo.fail_next("5xx", count=2, method="POST", path_regex=r"^/things$")
    assert requests.get(f"{echo.url}/things/1", timeout=2).status_code == 200  # not matching
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 503
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 503
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201
    with pytest.raises(ValueError):
        echo.fail_next("teapot")


def test_random_faults_are_seedable_and_scripted_ones_win(echo: EchoDouble) -> None:
    def run() -> list[int]:
        echo.seed(42)
        return [requests.post(f"{echo.url}/things", timeout=2).status_code for _ in range(30)]

    echo.fault_rate = 0.5
    echo.fault_kinds = ["5xx", "429"]
    first, second = run(), run()
    assert first == second, "same seed, same request order: same faults"
    assert set(first) == {201, 503, 429}
    assert 5 <= first.count(201) <= 25
    echo.fault_rate = 1.0
    echo.fault_kinds = ["500"]
    echo.fail_next("429")
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 429
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 500
    echo.clear_faults()
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201
    with pytest.raises(ValueError):
        echo.fault_rate = 1.5
    assert set(FAULT_KINDS) == {"5xx", "429", "reset", "lost_response", "slow", "500", "redirect"}


def test_the_redirect_fault_points_at_the_same_path_on_https(echo: EchoDouble) -> None:
    echo.fail_next("redirect", method="POST")
    response = requests.post(f"{echo.url}/things", timeout=2, allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{echo.port}/things"
    assert echo.applied == 0
    # The redirected request was not applied: the next one is the first to be.
    assert requests.post(f"{echo.url}/things", timeout=2).json() == {"applied": 1}


def test_random_faults_are_thread_safe_under_concurrency(echo: EchoDouble) -> None:
    echo.fault_rate = 0.3
    echo.fault_kinds = ["5xx", "reset"]
    echo.seed(7)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        session = requests.Session()
        for _ in range(20):
            try:
                outcome = str(session.post(f"{echo.url}/things", timeout=5).status_code)
            except requests.ConnectionError:
                outcome = "reset"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == len(echo.requests) == 160
    assert outcomes.count("201") == echo.applied
    assert {r.fault for r in echo.requests} == {None, "5xx", "reset"}
    assert echo.handler_errors == []


def test_rate_limit_sliding_window(echo: EchoDouble) -> None:
    echo.rate_limit_per_minute = 3
    statuses = [requests.post(f"{echo.url}/things", timeout=2).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert echo.throttled_count == 2
    assert [r.fault for r in echo.requests][-2:] == ["rate_limited", "rate_limited"]
    echo.rate_limit_per_minute = None
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201


# --------------------------------------------------------------------------- vendor error styles


def test_posthog_error_styles(posthog: PostHogDouble) -> None:
    session = ph_session()
    posthog.fail_next("429")
    response = session.patch(share_url(posthog, "s1"), json={"enabled": True})
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert response.json() == {
        "type": "throttled_error",
        "code": "throttled",
        "detail": "Request was throttled. Expected available in 1 second.",
        "attr": None,
    }
    posthog.throttle_seconds = 7
    posthog.rate_limit_per_minute = 1
    session.get(f"{posthog.url}/api/projects/1/")
    limited = session.get(f"{posthog.url}/api/projects/1/")
    assert limited.status_code == 429 and "in 7 seconds." in limited.json()["detail"]
    posthog.rate_limit_per_minute = None
    posthog.fail_next("5xx")
    unavailable = session.patch(share_url(posthog, "s1"), json={"enabled": True})
    assert unavailable.status_code == 503
    assert unavailable.json() == {
        "type": "server_error",
        "code": "error",
        "detail": "A server error occurred.",
        "attr": None,
    }
    assert posthog.share_config("s1") is None, "faulted requests are not applied"
    unknown = session.get(f"{posthog.url}/api/nothing/here")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


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


# --------------------------------------------------------------------------- PostHog


def test_posthog_auth_failures(posthog: PostHogDouble) -> None:
    url = share_url(posthog, "s1")
    invalid = {
        "type": "authentication_error",
        "code": "authentication_failed",
        "detail": "Personal API key found in request Authorization header is invalid.",
        "attr": None,
    }
    missing = requests.patch(url, json={"enabled": True}, timeout=2)
    assert missing.status_code == 401 and missing.json() == invalid
    wrong = ph_session("phx_wrong").patch(url, json={"enabled": True})
    assert wrong.status_code == 401 and wrong.json() == invalid
    scoped = ph_session("phx_read_only").patch(url, json={"enabled": True})
    assert scoped.status_code == 403
    assert scoped.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": "API key missing required scope 'sharing_configuration:write'",
        "attr": None,
    }
    # The read-only key may read.
    assert ph_session("phx_read_only").get(url).status_code == 200
    other_project = ph_session().patch(share_url(posthog, "s1", project=2), json={"enabled": True})
    assert other_project.status_code == 404
    assert other_project.json() == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Not found.",
        "attr": None,
    }
    assert posthog.share_config("s1") is None


def test_posthog_query_string_key_works_but_is_recorded(posthog: PostHogDouble) -> None:
    assert posthog.query_key_requests == []
    response = requests.get(
        f"{posthog.url}/api/projects/1/?personal_api_key=phx_sandbox_key", timeout=2
    )
    assert response.status_code == 200
    assert response.json() == {"id": 1, "name": "Sandbox project"}
    [leak] = posthog.query_key_requests
    assert leak.query["personal_api_key"] == "phx_sandbox_key"


def test_posthog_enable_is_idempotent_and_disable_kills_the_link(posthog: PostHogDouble) -> None:
    session = ph_session()
    first = session.patch(share_url(posthog, "sess-1"), json={"enabled": True})
    assert first.status_code == 200
    config = first.json()
    assert set(config) == {
        "created_at",
        "enabled",
        "access_token",
        "password_required",
        "settings",
        "share_passwords",
    }
    assert config["enabled"] is True and config["password_required"] is False
    assert config["created_at"].endswith("Z") and len(config["access_token"]) >= 16
    token = config["access_token"]
    assert posthog.is_live(token) and posthog.session_for(token) == "sess-1"
    # Trailing slash and the deprecated /environments/ alias reach the same config.
    again = session.patch(
        f"{posthog.url}/api/environments/1/session_recordings/sess-1/sharing/",
        json={"enabled": True},
    )
    assert again.json()["access_token"] == token
    assert session.get(share_url(posthog, "sess-1")).json()["access_token"] == token

    disabled = session.patch(share_url(posthog, "sess-1"), json={"enabled": False}).json()
    assert disabled["enabled"] is False
    assert not posthog.is_live(token)
    assert requests.get(f"{posthog.url}/shared/{token}", timeout=2).status_code == 404
    renewed = session.patch(share_url(posthog, "sess-1"), json={"enabled": True}).json()
    assert renewed["enabled"] is True and renewed["access_token"] != token
    assert posthog.is_live(renewed["access_token"]) and not posthog.is_live(token)


def test_posthog_get_on_never_shared_recording_returns_a_useless_token(
    posthog: PostHogDouble,
) -> None:
    response = ph_session().get(share_url(posthog, "never"))
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is False and body["created_at"] is None
    token = body["access_token"]
    assert token and not posthog.is_live(token) and posthog.session_for(token) is None
    assert requests.get(f"{posthog.url}/shared/{token}", timeout=2).status_code == 404
    # A second GET invents another one: nothing was saved.
    assert ph_session().get(share_url(posthog, "never")).json()["access_token"] != token


def test_posthog_validation_errors(posthog: PostHogDouble) -> None:
    session = ph_session()
    not_json = session.patch(
        share_url(posthog, "s"), data=b"enabled=true", headers={"Content-Type": "text/plain"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["type"] == "validation_error"
    assert not_json.json()["attr"] == "enabled"
    not_bool = session.patch(share_url(posthog, "s"), json={"enabled": "yes"})
    assert not_bool.status_code == 400
    assert not_bool.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": "Must be a valid boolean.",
        "attr": "enabled",
    }
    assert posthog.share_config("s") is None


def test_posthog_concurrent_enables_race_and_one_token_dies() -> None:
    with PostHogDouble(race_window=0.5) as posthog:
        results: list[dict[str, Any]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(2)

        def enable() -> None:
            barrier.wait()
            response = ph_session().patch(share_url(posthog, "racy"), json={"enabled": True})
            with lock:
                results.append(response.json())

        threads = [threading.Thread(target=enable) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        tokens = [r["access_token"] for r in results]
        assert all(r["enabled"] is True for r in results), "both responses look fine"
        assert tokens[0] != tokens[1]
        live = [t for t in tokens if posthog.is_live(t)]
        assert len(live) == 1, "only the first-created config survives"
        dead = next(t for t in tokens if t not in live)
        assert posthog.session_for(dead) == "racy"
        assert requests.get(f"{posthog.url}/shared/{dead}", timeout=2).status_code == 404
        assert requests.get(f"{posthog.url}/shared/{live[0]}", timeout=2).status_code == 200
        assert ph_session().get(share_url(posthog, "racy")).json()["access_token"] == live[0]
        # After the window, enabling is idempotent again.
        later = ph_session().patch(share_url(posthog, "racy"), json={"enabled": True}).json()
        assert later["access_token"] == live[0]


def test_posthog_serialised_enables_do_not_race() -> None:
    with PostHogDouble(race_window=0.1) as posthog:
        first = ph_session().patch(share_url(posthog, "calm"), json={"enabled": True}).json()
        second = ph_session().patch(share_url(posthog, "calm"), json={"enabled": True}).json()
        assert first["access_token"] == second["access_token"]
        assert posthog.is_live(first["access_token"])


def test_posthog_public_pages(posthog: PostHogDouble) -> None:
    sid = "0193-<b>abc"
    token = ph_session().patch(share_url(posthog, sid), json={"enabled": True}).json()
    for kind in ("embedded", "shared"):
        page = requests.get(f"{posthog.url}/{kind}/{token['access_token']}?t=42", timeout=2)
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert "Session replay" in page.text
        assert "0193-&lt;b&gt;abc" in page.text and "<b>" not in page.text
        gone = requests.get(f"{posthog.url}/{kind}/not-a-token", timeout=2)
        assert gone.status_code == 404 and gone.headers["Content-Type"].startswith("text/html")


def test_posthog_recording_lookup_and_scopes() -> None:
    with PostHogDouble(all_recordings_exist=False) as posthog:
        url = f"{posthog.url}/api/projects/1/session_recordings/rec-1"
        assert ph_session().get(url).status_code == 404
        posthog.add_recording("rec-1")
        found = ph_session().get(url)
        assert found.status_code == 200 and found.json()["id"] == "rec-1"
        # Sharing a recording that does not exist yet still works (ingestion lag).
        ok = ph_session().patch(share_url(posthog, "rec-2"), json={"enabled": True})
        assert ok.status_code == 200
    with PostHogDouble(api_keys={"phx_share_only": {"sharing_configuration:write"}}) as posthog:
        denied = ph_session("phx_share_only").get(
            f"{posthog.url}/api/projects/1/session_recordings/x"
        )
        assert denied.status_code == 403
        assert denied.json()["detail"] == "API key missing required scope 'session_recording:read'"
        project = ph_session("phx_share_only").get(f"{posthog.url}/api/projects/1/")
        assert project.status_code == 403


# --------------------------------------------------------------------------- Zendesk


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


# --------------------------------------------------------------------------- Jira


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


# --------------------------------------------------------------------------- Sandbox


def test_sandbox_env_faults_latency_and_demo_data() -> None:
    with Sandbox(seed=3, fault_rate=0.0) as sandbox:
        env = sandbox.env()
        assert set(env) == {
            "POSTHOG_HOST",
            "POSTHOG_PROJECT_ID",
            "POSTHOG_PERSONAL_API_KEY",
            "ZENDESK_URL",
            "ZENDESK_EMAIL",
            "ZENDESK_API_TOKEN",
            "JIRA_URL",
            "JIRA_EMAIL",
            "JIRA_API_TOKEN",
        }
        assert env["POSTHOG_HOST"] == sandbox.posthog.url and env["POSTHOG_PROJECT_ID"] == "1"
        sandbox.seed_demo_data()
        assert sorted(sandbox.zendesk.tickets) == [101, 102, 103, 104, 105, 106]
        assert sandbox.zendesk.tickets[101]["subject"] == "Checkout button does nothing"
        assert sandbox.zendesk.tickets[106]["status"] == "closed"
        assert sorted(sandbox.jira.issues) == [f"BUG-{n}" for n in range(1, 6)]
        sandbox.set_faults(1.0, ["5xx"])
        for double in sandbox.vendors:
            assert double.fault_rate == 1.0 and double.fault_kinds == ["5xx"]
        assert (
            requests.get(f"{env['ZENDESK_URL']}/api/v2/users/me.json", timeout=2).status_code == 503
        )
        sandbox.set_faults(0.0)
        sandbox.set_latency(0.2)
        assert all(double.latency == 0.2 for double in sandbox.vendors)
        assert sandbox.console_url.startswith("http://127.0.0.1:")
    with Sandbox(jira_deployment="datacenter") as sandbox:
        env = sandbox.env()
        assert "JIRA_EMAIL" not in env and "JIRA_API_TOKEN" not in env
        assert env["JIRA_PERSONAL_ACCESS_TOKEN"] == "jira_sandbox_pat"


def test_sandbox_pinned_ports_and_constructor_options() -> None:
    probe = EchoDouble()
    probe.start()
    port = probe.port
    probe.stop()
    with Sandbox(
        ports={"zendesk": port}, latency=0.05, fault_rate=0.1, fault_kinds=["429"], race_window=0.2
    ) as sandbox:
        assert sandbox.zendesk.url == f"http://127.0.0.1:{port}"
        assert sandbox.posthog.race_window == 0.2
        assert sandbox.jira.latency == 0.05 and sandbox.posthog.fault_kinds == ["429"]
    with pytest.raises(ValueError):
        Sandbox(ports={"nope": 1})
