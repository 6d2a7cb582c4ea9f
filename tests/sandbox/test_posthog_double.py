"""The PostHog double over real HTTP: error style, auth, the sharing API and its traps."""

from __future__ import annotations

import threading
from typing import Any

import requests

from sandbox.doubles import PostHogDouble
from tests.sandbox.helpers import ph_session, share_url


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
