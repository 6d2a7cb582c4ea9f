"""The PostHog double over real HTTP: error style, auth, the sharing API and its traps."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from sandbox.doubles import PostHogDouble
from tests.integration.sandbox.helpers import ph_session, share_url

NOT_FOUND = {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}


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


def recording_url(double: PostHogDouble, sid: str, project: int | str = 1) -> str:
    return f"{double.url}/api/projects/{project}/session_recordings/{sid}"


def parse_time(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value[:-1] + "+00:00")


def test_posthog_recording_has_the_serializer_shape() -> None:
    sid = "0193abcd-ef01-7000-8000-00000000cafe"
    start = datetime(2026, 11, 26, 9, 12, 3, 412000, tzinfo=timezone.utc)
    with PostHogDouble(all_recordings_exist=False) as posthog:
        posthog.add_recording(sid, start_time=start, duration_seconds=187)
        response = ph_session().get(recording_url(posthog, sid))
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        assert set(body) >= {
            "id",
            "distinct_id",
            "viewed",
            "recording_duration",
            "active_seconds",
            "inactive_seconds",
            "start_time",
            "end_time",
            "click_count",
            "keypress_count",
            "console_error_count",
            "start_url",
            "ongoing",
            "person",
        }
        assert body["id"] == sid and body["distinct_id"] == "user-0193abcd"
        assert body["viewed"] is False and body["ongoing"] is False
        assert body["recording_duration"] == 187 and isinstance(body["recording_duration"], int)
        assert body["active_seconds"] + body["inactive_seconds"] == 187
        assert body["start_time"] == "2026-11-26T09:12:03.412000Z"
        assert body["end_time"] == "2026-11-26T09:15:10.412000Z"
        for count in ("click_count", "keypress_count", "console_error_count"):
            assert isinstance(body[count], int) and body[count] >= 0
        assert body["start_url"].startswith("https://")
        person = body["person"]
        assert set(person) == {"id", "uuid", "name", "distinct_ids", "properties", "created_at"}
        assert person["distinct_ids"] == ["user-0193abcd"]
        # Named by its email property, as PostHog names an identified person.
        assert person["name"] == "customer@sandbox.test"
        assert person["properties"]["email"] == "customer@sandbox.test"
        assert parse_time(person["created_at"]) < start
        # The trailing slash and the deprecated /environments/ alias answer the same.
        assert ph_session().get(recording_url(posthog, sid) + "/").json() == body
        alias = f"{posthog.url}/api/environments/1/session_recordings/{sid}"
        assert ph_session().get(alias).json() == body


def test_posthog_recording_defaults_and_ongoing() -> None:
    with PostHogDouble(all_recordings_exist=False) as posthog:
        before = datetime.now(timezone.utc)
        posthog.add_recording("live", duration_seconds=60, ongoing=True)
        after = datetime.now(timezone.utc)
        body = ph_session().get(recording_url(posthog, "live")).json()
        assert body["ongoing"] is True and body["recording_duration"] == 60
        start, end = parse_time(body["start_time"]), parse_time(body["end_time"])
        assert before - timedelta(seconds=60) <= start <= after - timedelta(seconds=60)
        assert end - start == timedelta(seconds=60)
        # A non-UTC start time is reported in UTC; a naive one is refused.
        paris = timezone(timedelta(hours=1))
        posthog.add_recording("tz", start_time=datetime(2026, 1, 2, 10, 0, 0, 5, tzinfo=paris))
        assert ph_session().get(recording_url(posthog, "tz")).json()["start_time"] == (
            "2026-01-02T09:00:00.000005Z"
        )
        with pytest.raises(ValueError, match="timezone-aware"):
            posthog.add_recording("naive", start_time=datetime(2026, 1, 2, 10, 0, 0))
        with pytest.raises(ValueError):
            posthog.add_recording("neg", duration_seconds=-1)


def test_posthog_recording_distinct_ids_and_person() -> None:
    with PostHogDouble(all_recordings_exist=False) as posthog:
        posthog.add_recording("s-merged", distinct_ids=["anon-17f3", "alice@example.com"])
        body = ph_session().get(recording_url(posthog, "s-merged")).json()
        assert body["distinct_id"] == "anon-17f3"
        assert body["person"]["distinct_ids"] == ["anon-17f3", "alice@example.com"]
        # The same session always gets the same person ids.
        again = ph_session().get(recording_url(posthog, "s-merged")).json()["person"]
        assert (again["id"], again["uuid"]) == (body["person"]["id"], body["person"]["uuid"])
        posthog.add_recording("s-anon", distinct_ids=[])
        anonymous = ph_session().get(recording_url(posthog, "s-anon")).json()
        assert anonymous["person"] is None and anonymous["distinct_id"] == "user-s-anon"


def test_posthog_recording_lists_ten_ids_and_the_persons_lookup_all() -> None:
    ids = [f"device-{n:02d}" for n in range(12)]
    with PostHogDouble(all_recordings_exist=False) as posthog:
        posthog.add_recording("s-many", distinct_ids=ids, email="Alice@Example.com")
        person = ph_session().get(recording_url(posthog, "s-many")).json()["person"]
        assert person["distinct_ids"] == ids[:10]
        assert person["properties"]["email"] == "Alice@Example.com"
        base = f"{posthog.url}/api/projects/{posthog.project_id}/persons/"
        found = ph_session().get(base, params={"distinct_id": "device-11"}).json()
        assert [p["uuid"] for p in found["results"]] == [person["uuid"]]
        assert found["results"][0]["distinct_ids"] == ids
        assert ph_session().get(base, params={"distinct_id": "nobody"}).json()["results"] == []
        # A person known without a recording of theirs; no email property when given none.
        posthog.add_person(["visitor-1"], email=None)
        visitor = ph_session().get(base, params={"distinct_id": "visitor-1"}).json()["results"]
        assert visitor[0]["distinct_ids"] == ["visitor-1"]
        assert "email" not in visitor[0]["properties"]


def test_posthog_persons_lookup_needs_its_scope() -> None:
    keys = {"phx_narrow": {"session_recording:read"}}
    with PostHogDouble(api_keys=keys) as posthog:
        answer = requests.get(
            f"{posthog.url}/api/projects/{posthog.project_id}/persons/",
            params={"distinct_id": "x"},
            headers={"Authorization": "Bearer phx_narrow"},
            timeout=5,
        )
        assert answer.status_code == 403 and "person:read" in answer.json()["detail"]


def test_posthog_recording_not_found() -> None:
    with PostHogDouble(all_recordings_exist=False) as posthog:
        unknown = ph_session().get(recording_url(posthog, "never-recorded"))
        assert unknown.status_code == 404 and unknown.json() == NOT_FOUND
        posthog.add_recording("gone")
        assert ph_session().get(recording_url(posthog, "gone")).status_code == 200
        posthog.remove_recording("gone")
        removed = ph_session().get(recording_url(posthog, "gone"))
        assert removed.status_code == 404 and removed.json() == NOT_FOUND
        assert "gone" not in posthog.recordings
    with PostHogDouble() as posthog:
        posthog.remove_recording("deleted")
        removed = ph_session().get(recording_url(posthog, "deleted"))
        assert removed.status_code == 404 and removed.json() == NOT_FOUND
        # Adding it again undoes the removal.
        posthog.add_recording("deleted")
        assert ph_session().get(recording_url(posthog, "deleted")).status_code == 200
        other_project = ph_session().get(recording_url(posthog, "anything", project=2))
        assert other_project.status_code == 404 and other_project.json() == NOT_FOUND


def test_posthog_recording_appears_after_the_ingestion_delay() -> None:
    with PostHogDouble() as posthog:
        added = time.monotonic()
        posthog.add_recording("fresh", appears_after=0.3)
        early = ph_session().get(recording_url(posthog, "fresh"))
        assert time.monotonic() - added < 0.3, "too slow a machine for this test"
        assert early.status_code == 404 and early.json() == NOT_FOUND
        assert "fresh" in posthog.recordings, "held, just not visible yet"
        time.sleep(max(0.0, added + 0.3 - time.monotonic()) + 0.02)
        late = ph_session().get(recording_url(posthog, "fresh"))
        assert late.status_code == 200 and late.json()["id"] == "fresh"
        [summary] = posthog.snapshot()["recordings"]
        assert summary["session_id"] == "fresh" and summary["visible"] is True


def test_posthog_recording_needs_the_read_scope(posthog: PostHogDouble) -> None:
    denied = ph_session("phx_read_only").get(recording_url(posthog, "s1"))
    assert denied.status_code == 403
    assert denied.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": "API key missing required scope 'session_recording:read'",
        "attr": None,
    }
    anonymous = requests.get(recording_url(posthog, "s1"), timeout=2)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "authentication_failed"
    assert posthog.recordings == frozenset(), "refused reads synthesize nothing"


def test_posthog_synthesized_recording_is_stable(posthog: PostHogDouble) -> None:
    url = recording_url(posthog, "0193ffff-synth")
    first = ph_session().get(url).json()
    time.sleep(0.01)
    second = ph_session().get(url).json()
    assert first == second
    assert first["distinct_id"] == "user-0193ffff" and first["recording_duration"] == 187
    assert parse_time(first["end_time"]) <= datetime.now(timezone.utc)
    assert posthog.recordings == {"0193ffff-synth"}


def test_posthog_concurrent_reads_synthesize_one_recording(posthog: PostHogDouble) -> None:
    barrier = threading.Barrier(8)
    starts: list[str] = []
    lock = threading.Lock()

    def read() -> None:
        barrier.wait()
        body = ph_session().get(recording_url(posthog, "crowded")).json()
        with lock:
            starts.append(body["start_time"])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 8 and len(set(starts)) == 1
    assert posthog.handler_errors == []


def test_posthog_recording_reads_are_counted_and_faulted(posthog: PostHogDouble) -> None:
    session = ph_session()
    assert posthog.recording_reads() == []
    session.get(recording_url(posthog, "a"))
    session.get(recording_url(posthog, "a") + "/")
    session.get(recording_url(posthog, "b"))
    session.get(share_url(posthog, "a"))  # the sharing config is not the recording
    session.patch(share_url(posthog, "a"), json={"enabled": True})
    assert len(posthog.recording_reads()) == 3
    assert len(posthog.recording_reads("a")) == 2
    assert len(posthog.recording_reads("b")) == 1
    assert posthog.recording_reads("c") == []
    posthog.fail_next("5xx", path_regex=r"/session_recordings/[^/]+/?$")
    faulted = session.get(recording_url(posthog, "c"))
    assert faulted.status_code == 503 and faulted.json()["type"] == "server_error"
    assert "c" not in posthog.recordings, "a faulted read reaches no handler"
    [read] = posthog.recording_reads("c")
    assert read.fault == "5xx" and read.status == 503
    assert session.get(recording_url(posthog, "c")).status_code == 200
    assert len(posthog.recording_reads("c")) == 2


# ----------------------------------------------------------------- revoking a shared link


def refresh_url(double: PostHogDouble, sid: str, slash: bool = True) -> str:
    return share_url(double, sid) + ("/refresh/" if slash else "/refresh")


def page_status(double: PostHogDouble, token: str, kind: str = "embedded") -> int:
    return requests.get(f"{double.url}/{kind}/{token}", timeout=2).status_code


def enable(double: PostHogDouble, sid: str, enabled: bool = True) -> dict[str, Any]:
    response = ph_session().patch(share_url(double, sid), json={"enabled": enabled})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["enabled"] is enabled
    return body


def test_posthog_reenable_mode_is_checked() -> None:
    assert PostHogDouble().reenable == "new_token"
    with pytest.raises(ValueError, match="reenable"):
        PostHogDouble(reenable="old_token")
    double = PostHogDouble(reenable="same_token")
    assert double.reenable == "same_token"
    with pytest.raises(ValueError):
        double.reenable = "sometimes"
    assert double.reenable == "same_token"


@pytest.mark.parametrize("mode", ["new_token", "same_token"])
def test_posthog_disable_kills_the_embed_link_at_once(mode: str) -> None:
    with PostHogDouble(reenable=mode) as posthog:
        token = enable(posthog, "rev-1")["access_token"]
        assert page_status(posthog, token) == 200 and page_status(posthog, token, "shared") == 200
        enable(posthog, "rev-1", enabled=False)
        assert page_status(posthog, token) == 404 and page_status(posthog, token, "shared") == 404
        assert not posthog.is_live(token) and posthog.session_for(token) == "rev-1"
        assert token in posthog.snapshot()["dead_tokens"]


def test_posthog_same_token_mode_brings_the_old_token_back() -> None:
    with PostHogDouble(reenable="same_token") as posthog:
        token = enable(posthog, "rev-2")["access_token"]
        enable(posthog, "rev-2", enabled=False)
        assert page_status(posthog, token) == 404
        again = enable(posthog, "rev-2")
        assert again["access_token"] == token
        assert page_status(posthog, token) == 200 and posthog.is_live(token)


def test_posthog_new_token_mode_issues_a_new_token_on_reenable(posthog: PostHogDouble) -> None:
    assert posthog.reenable == "new_token"
    token = enable(posthog, "rev-3")["access_token"]
    enable(posthog, "rev-3", enabled=False)
    renewed = enable(posthog, "rev-3")["access_token"]
    assert renewed != token
    assert page_status(posthog, token) == 404 and not posthog.is_live(token)
    assert page_status(posthog, renewed) == 200 and posthog.is_live(renewed)
    # Switching the mode later applies to the next re-enable.
    posthog.reenable = "same_token"
    enable(posthog, "rev-3", enabled=False)
    assert enable(posthog, "rev-3")["access_token"] == renewed


def test_posthog_disable_refresh_reenable_revokes_for_good() -> None:
    with PostHogDouble(reenable="same_token") as posthog:
        session = ph_session()
        original = enable(posthog, "rev-4")["access_token"]
        enable(posthog, "rev-4", enabled=False)
        refreshed = session.post(refresh_url(posthog, "rev-4"))
        assert refreshed.status_code == 200
        body = refreshed.json()
        assert set(body) == {
            "created_at",
            "enabled",
            "access_token",
            "password_required",
            "settings",
            "share_passwords",
        }
        assert body["enabled"] is False and body["access_token"] != original
        assert body["created_at"].endswith("Z")
        # Disabled before the refresh: no grace period for the original.
        assert page_status(posthog, original) == 404 and not posthog.is_live(original)
        assert page_status(posthog, body["access_token"]) == 404
        assert posthog.share_config("rev-4") == body
        again = enable(posthog, "rev-4")
        assert again["access_token"] == body["access_token"] != original
        assert page_status(posthog, again["access_token"]) == 200
        assert page_status(posthog, original) == 404 and not posthog.is_live(original)
        [patch_on, patch_off, refresh, patch_again] = posthog.sharing_calls("rev-4")
        assert [c.method for c in (patch_on, patch_off, refresh, patch_again)] == [
            "PATCH",
            "PATCH",
            "POST",
            "PATCH",
        ]
        assert refresh.path.endswith("/sharing/refresh/") and refresh.status == 200
        assert posthog.sharing_calls("other") == []


def test_posthog_refresh_of_an_enabled_share_keeps_the_old_token_for_the_grace_period() -> None:
    with PostHogDouble(refresh_grace_seconds=0.3) as posthog:
        old = enable(posthog, "rev-5")["access_token"]
        started = time.monotonic()
        response = ph_session().post(refresh_url(posthog, "rev-5", slash=False))
        assert response.status_code == 200
        new = response.json()
        assert new["enabled"] is True and new["access_token"] != old
        # Inside the grace period both tokens work.
        early = [page_status(posthog, old), page_status(posthog, old, "shared")]
        alive = posthog.is_live(old)
        assert time.monotonic() - started < 0.3, "too slow a machine for this test"
        assert early == [200, 200] and alive
        assert old in posthog.snapshot()["grace_tokens"]
        assert page_status(posthog, new["access_token"]) == 200
        # Enabling again is idempotent on the new config.
        assert enable(posthog, "rev-5")["access_token"] == new["access_token"]
        time.sleep(max(0.0, started + 0.3 - time.monotonic()) + 0.05)
        assert page_status(posthog, old) == 404 and not posthog.is_live(old)
        assert page_status(posthog, new["access_token"]) == 200
        assert posthog.session_for(old) == "rev-5"
        assert posthog.snapshot()["grace_tokens"] == []


def test_posthog_disable_ends_the_grace_period_of_a_refreshed_token() -> None:
    with PostHogDouble() as posthog:
        assert posthog.refresh_grace_seconds == 300.0
        old = enable(posthog, "rev-6")["access_token"]
        new = ph_session().post(refresh_url(posthog, "rev-6")).json()["access_token"]
        assert page_status(posthog, old) == 200
        enable(posthog, "rev-6", enabled=False)
        assert page_status(posthog, old) == 404 and page_status(posthog, new) == 404
        assert not posthog.is_live(old) and not posthog.is_live(new)


def test_posthog_refresh_of_a_never_shared_session_makes_a_disabled_config(
    posthog: PostHogDouble,
) -> None:
    response = ph_session().post(refresh_url(posthog, "rev-7"))
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is False and body["created_at"].endswith("Z")
    assert not posthog.is_live(body["access_token"])
    assert page_status(posthog, body["access_token"]) == 404
    # Saved: GET answers the same config (a never-shared one would get a fresh token).
    assert ph_session().get(share_url(posthog, "rev-7")).json() == body


def test_posthog_refresh_needs_the_write_scope(posthog: PostHogDouble) -> None:
    token = enable(posthog, "rev-8")["access_token"]
    denied = ph_session("phx_read_only").post(refresh_url(posthog, "rev-8"))
    assert denied.status_code == 403
    assert denied.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": "API key missing required scope 'sharing_configuration:write'",
        "attr": None,
    }
    assert requests.post(refresh_url(posthog, "rev-8"), timeout=2).status_code == 401
    other_project = ph_session().post(
        f"{posthog.url}/api/projects/2/session_recordings/rev-8/sharing/refresh/"
    )
    assert other_project.status_code == 404 and other_project.json() == NOT_FOUND
    wrong_method = ph_session().get(refresh_url(posthog, "rev-8"))
    assert wrong_method.status_code == 405
    # Nothing was rotated.
    assert posthog.share_config("rev-8")["access_token"] == token  # type: ignore[index]
    assert page_status(posthog, token) == 200 and posthog.handler_errors == []
