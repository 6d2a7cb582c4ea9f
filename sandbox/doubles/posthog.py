"""A fake PostHog: the session-recording sharing API, its public replay pages and its traps.

Imitates `posthog/api/sharing.py` as described in docs/notes (external-apis.md): the same
token on enabling again, a new token (or, with `reenable="same_token"`, the old one back) on
re-enabling after a disable, token rotation by `POST .../sharing/refresh/` with a grace period
for the old token, a useless fresh token from GET on a never-shared recording, and the
duplicate-config race that expires one of two concurrent tokens.

Also serves a recording's metadata (`GET .../session_recordings/{id}`, see
posthog_recordings.py), including the ingestion delay before a new recording can be found.

This module holds the double's settings, its test helpers, the API keys' scopes and the routes
but for the sharing ones, in posthog_sharing_routes.py; the sharing state is in
posthog_sharing.py, answers and errors in PostHog's style in posthog_answers.py.
"""

from __future__ import annotations

import copy
import re
import threading
from datetime import datetime
from typing import Any

from sandbox.doubles import posthog_answers as answers
from sandbox.doubles.auth import bearer_token
from sandbox.doubles.base import Double
from sandbox.doubles.messages import Request, Response, json_response
from sandbox.doubles.posthog_answers import permission_denied
from sandbox.doubles.posthog_recordings import (
    CUSTOMER_EMAIL,
    DEFAULT_DURATION_SECONDS,
    RecordingStore,
    new_recording,
    person_json,
    recording_json,
)
from sandbox.doubles.posthog_sharing import SharingStore, check_reenable, config_json
from sandbox.doubles.posthog_sharing_routes import SharingRoutes
from sandbox.doubles.recording import RecordedRequest

DEFAULT_API_KEYS: dict[str, set[str]] = {
    "phx_sandbox_key": {
        "sharing_configuration:read",
        "sharing_configuration:write",
        "session_recording:read",
        "project:read",
        "person:read",
        "organization:read",
    }
}

# `/api/environments/{id}/...` is PostHog's deprecated alias of `/api/projects/{id}/...`.
_PROJECT = r"/api/(?:projects|environments)/(?P<pid>[^/]+)"
_SHARING = _PROJECT + r"/session_recordings/(?P<sid>[^/]+)/sharing/?"
_REFRESH = _PROJECT + r"/session_recordings/(?P<sid>[^/]+)/sharing/refresh/?"
_RECORDING = _PROJECT + r"/session_recordings/(?P<sid>[^/]+)/?"
_PERSONS = _PROJECT + r"/persons/?"
_RECORDING_RE = re.compile(_RECORDING)
_SHARING_RE = re.compile(_SHARING)
_REFRESH_RE = re.compile(_REFRESH)


class PostHogDouble(SharingRoutes, Double):
    EDGE_HEADERS = answers.EDGE_HEADERS

    def __init__(
        self,
        project_id: int = 1,
        api_keys: dict[str, set[str]] | None = None,
        race_window: float = 0.0,
        all_recordings_exist: bool = True,
        reenable: str = "new_token",
        refresh_grace_seconds: float = 300.0,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.project_id = project_id
        self.api_keys: dict[str, set[str]] = copy.deepcopy(
            DEFAULT_API_KEYS if api_keys is None else api_keys
        )
        self.race_window = race_window
        #: Whether an unknown (never added, not removed) session has a recording: one is
        #: synthesized with the `add_recording` defaults on its first GET, then kept.
        self.all_recordings_exist = all_recordings_exist
        self.reenable = reenable
        #: How long a token rotated out by `POST .../sharing/refresh/` keeps working, if its
        #: config was enabled (PostHog's SHARING_TOKEN_GRACE_PERIOD_SECONDS).
        self.refresh_grace_seconds = refresh_grace_seconds
        self.throttle_seconds = 1
        #: The organisation's `allow_publicly_shared_resources`: when false, enabling a share
        #: is refused (403) and no public page answers, those shared before included.
        self.public_sharing_allowed = True
        self._state = threading.Lock()
        self._sharing = SharingStore()
        self._recordings = RecordingStore()

        self.route("PATCH", _SHARING, self._patch_sharing)
        self.route("GET", _SHARING, self._get_sharing)
        self.route("POST", _REFRESH, self._refresh_sharing)
        self.route("GET", _RECORDING, self._get_recording)
        self.route("GET", _PERSONS, self._get_persons)
        self.route("GET", r"/api/organizations/@current/?", self._get_organization)
        self.route("GET", _PROJECT + "/?", self._get_project)
        self.route("GET", r"/(?:embedded|shared)/(?P<token>[^/]+)/?", self._public_page)

    # ----------------------------------------------------------------- test helpers

    @property
    def reenable(self) -> str:
        """What enabling a disabled share does: `"new_token"` (current PostHog: a new token,
        the old one stays dead) or `"same_token"` (older PostHog: the old token works again)."""
        return self._reenable

    @reenable.setter
    def reenable(self, mode: str) -> None:
        self._reenable = check_reenable(mode)

    @property
    def api_key(self) -> str:
        """A key with every scope (the first configured one), for wiring clients up."""
        return next(iter(self.api_keys))

    def add_recording(
        self,
        session_id: str,
        *,
        start_time: datetime | None = None,
        duration_seconds: int = DEFAULT_DURATION_SECONDS,
        ongoing: bool = False,
        distinct_ids: list[str] | None = None,
        appears_after: float = 0.0,
        email: str | None = CUSTOMER_EMAIL,
    ) -> None:
        """Give `session_id` a recording (replacing any earlier one, undoing a removal); GET
        answers 404 for it until `appears_after` seconds from now (ingestion delay). Defaults
        and the meaning of each argument: `posthog_recordings.new_recording`."""
        recording = new_recording(
            session_id,
            start_time=start_time,
            duration_seconds=duration_seconds,
            ongoing=ongoing,
            distinct_ids=distinct_ids,
            appears_after=appears_after,
            email=email,
        )
        with self._state:
            self._recordings.add(recording)

    def add_person(self, distinct_ids: list[str], email: str | None = CUSTOMER_EMAIL) -> None:
        """A person PostHog knows (found by `GET .../persons/?distinct_id=`) with no recording
        of theirs needed: the reporter of a session that has none."""
        if not distinct_ids:
            raise ValueError("a person has at least one distinct id")
        person = new_recording(
            f"person-{distinct_ids[0]}",
            start_time=None,
            duration_seconds=0,
            ongoing=False,
            distinct_ids=distinct_ids,
            appears_after=0.0,
            email=email,
        )
        with self._state:
            self._recordings.add_person(person)

    def remove_recording(self, session_id: str) -> None:
        """`session_id` has no recording (404), even when `all_recordings_exist` is true."""
        with self._state:
            self._recordings.remove(session_id)

    @property
    def recordings(self) -> frozenset[str]:
        """Sessions holding a recording (added, or synthesized by a GET), visible yet or not."""
        with self._state:
            return self._recordings.session_ids()

    def recording_reads(self, session_id: str | None = None) -> list[RecordedRequest]:
        """The `GET .../session_recordings/{id}` requests received (faulted ones included:
        see `fault` and `status`), optionally only those for `session_id`."""
        reads = []
        for request in self.calls("GET"):
            match = _RECORDING_RE.fullmatch(request.path)
            if match and (session_id is None or match["sid"] == session_id):
                reads.append(request)
        return reads

    def is_live(self, token: str) -> bool:
        """Whether /shared/{token} would show the replay right now (a token rotated out by a
        refresh is live until its grace period ends)."""
        with self._state:
            return self._sharing.serving(token)

    def session_for(self, token: str) -> str | None:
        """The session a token was issued for (live or dead), or None if never issued."""
        with self._state:
            info = self._sharing.tokens.get(token)
            return info.session_id if info else None

    def share_config(self, session_id: str) -> dict[str, Any] | None:
        """The session's current config as the API renders it, or None if it has none."""
        with self._state:
            share = self._sharing.shares.get(session_id)
            return config_json(share) if share else None

    def sharing_calls(self, session_id: str | None = None) -> list[RecordedRequest]:
        """The sharing writes received (`PATCH .../sharing` and `POST .../sharing/refresh/`,
        faulted ones included), optionally only those for `session_id`."""
        writes = []
        for request in self.calls():
            if request.method == "PATCH":
                match = _SHARING_RE.fullmatch(request.path)
            elif request.method == "POST":
                match = _REFRESH_RE.fullmatch(request.path)
            else:
                continue
            if match and (session_id is None or match["sid"] == session_id):
                writes.append(request)
        return writes

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the console: every recording's sharing state, and the recordings."""
        with self._state:
            return {
                "project_id": self.project_id,
                **self._sharing.summaries(self.url),
                "recordings": self._recordings.summaries(),
            }

    @property
    def query_key_requests(self) -> list[Any]:
        """Requests that authenticated with `?personal_api_key=` (they leak the key to logs)."""
        return [r for r in self.calls() if "personal_api_key" in r.query]

    # ----------------------------------------------------------------- vendor style

    def not_found_response(self, request: Request) -> Response:
        return answers.not_found()

    def method_not_allowed_response(self, request: Request) -> Response:
        return answers.method_not_allowed(request.method)

    def throttled_response(self) -> Response:
        return answers.throttled(self.throttle_seconds)

    def unavailable_response(self) -> Response:
        return answers.server_error(503)

    def internal_error_response(self) -> Response:
        return answers.server_error(500)

    # ----------------------------------------------------------------- auth

    def _authorize(self, request: Request, scope: str) -> Response | None:
        """None if the request may proceed, else the error response (401, 404 or 403)."""
        key = bearer_token(request.headers) or request.query.get("personal_api_key")
        scopes = self.api_keys.get(key) if key else None
        if scopes is None:
            return answers.invalid_key()
        # Organisation-wide routes name no project.
        if request.params.get("pid", str(self.project_id)) != str(self.project_id):
            return self.not_found_response(request)
        if scope not in scopes and "*" not in scopes:
            return permission_denied(f"API key missing required scope '{scope}'")
        return None

    # ----------------------------------------------------------------- routes

    def _get_recording(self, request: Request) -> Response:
        denied = self._authorize(request, "session_recording:read")
        if denied:
            return denied
        sid = request.params["sid"]
        with self._state:
            recording = self._recordings.find(sid, synthesize=self.all_recordings_exist)
            body = recording_json(recording) if recording is not None else None
        if body is None:
            return self.not_found_response(request)
        return json_response(200, body)

    def _get_persons(self, request: Request) -> Response:
        """`GET .../persons/?distinct_id=X`: the person with that id (all its ids), if any.

        Persons are those of the recordings, including recordings not ingested yet."""
        denied = self._authorize(request, "person:read")
        if denied:
            return denied
        wanted = request.query.get("distinct_id")
        with self._state:
            recording = self._recordings.person_of(wanted) if wanted else None
            results = [person_json(recording)] if recording is not None else []
        return json_response(200, {"next": None, "previous": None, "results": results})

    def _get_project(self, request: Request) -> Response:
        denied = self._authorize(request, "project:read")
        if denied:
            return denied
        return json_response(200, {"id": self.project_id, "name": "Sandbox project"})

    def _get_organization(self, request: Request) -> Response:
        """`GET /api/organizations/@current/`: the settings the sandbox models."""
        denied = self._authorize(request, "organization:read")
        if denied:
            return denied
        return json_response(
            200,
            {
                "id": "0193a1b2-0000-7000-8000-00000000000a",
                "name": "Sandbox organisation",
                "allow_publicly_shared_resources": self.public_sharing_allowed,
            },
        )

    def _public_page(self, request: Request) -> Response:
        token = request.params["token"]
        with self._state:
            info = self._sharing.tokens.get(token)
            serving = info is not None and self._sharing.serving(token)
            session_id = info.session_id if info and serving else None
        if not self.public_sharing_allowed:
            session_id = None
        return answers.public_page(session_id)
