"""A fake PostHog: the session-recording sharing API, its public replay pages and its traps.

Imitates `posthog/api/sharing.py` as described in docs/notes (external-apis.md): the same
token on re-enable, a new token after disable, a useless fresh token from GET on a never-shared
recording, and the duplicate-config race that expires one of two concurrent tokens.

Also serves a recording's metadata (`GET .../session_recordings/{id}`, see
posthog_recordings.py), including the ingestion delay before a new recording can be found.
"""

from __future__ import annotations

import copy
import html
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sandbox.doubles.auth import bearer_token
from sandbox.doubles.base import Double
from sandbox.doubles.messages import Request, Response, html_response, json_response
from sandbox.doubles.posthog_recordings import (
    DEFAULT_DURATION_SECONDS,
    RecordingStore,
    new_recording,
    recording_json,
)
from sandbox.doubles.recording import RecordedRequest

DEFAULT_API_KEYS: dict[str, set[str]] = {
    "phx_sandbox_key": {
        "sharing_configuration:read",
        "sharing_configuration:write",
        "session_recording:read",
        "project:read",
    }
}

# `/api/environments/{id}/...` is PostHog's deprecated alias of `/api/projects/{id}/...`.
_PROJECT = r"/api/(?:projects|environments)/(?P<pid>[^/]+)"
_SHARING = _PROJECT + r"/session_recordings/(?P<sid>[^/]+)/sharing/?"
_RECORDING = _PROJECT + r"/session_recordings/(?P<sid>[^/]+)/?"
_RECORDING_RE = re.compile(_RECORDING)


def _error(status: int, type_: str, code: str, detail: str, attr: str | None = None) -> Response:
    # DRF exception shape used by every PostHog API error.
    return json_response(status, {"type": type_, "code": code, "detail": detail, "attr": attr})


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class _Share:
    """The current sharing configuration of one recording."""

    token: str
    enabled: bool
    created_at: str


@dataclass
class _Token:
    """Every token ever handed out as enabled, so dead links can be told from unknown ones."""

    session_id: str
    live: bool


class PostHogDouble(Double):
    # What a PostHog Cloud API answer carries besides its body (values typical, not copied).
    EDGE_HEADERS = (
        ("Vary", "Accept, Origin, Cookie"),
        ("Allow", "GET, PATCH, HEAD, OPTIONS"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
        ("X-PostHog-Request-Id", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        ("Via", "1.1 google"),
        ("Alt-Svc", 'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000'),
    )

    def __init__(
        self,
        project_id: int = 1,
        api_keys: dict[str, set[str]] | None = None,
        race_window: float = 0.0,
        all_recordings_exist: bool = True,
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
        self.throttle_seconds = 1
        self._state = threading.Lock()
        self._shares: dict[str, _Share] = {}
        self._tokens: dict[str, _Token] = {}
        # Tokens created for a session whose enabling PATCH is still inside `race_window`.
        self._racing: dict[str, list[str]] = {}
        self._recordings = RecordingStore()

        self.route("PATCH", _SHARING, self._patch_sharing)
        self.route("GET", _SHARING, self._get_sharing)
        self.route("GET", _RECORDING, self._get_recording)
        self.route("GET", _PROJECT + "/?", self._get_project)
        self.route("GET", r"/(?:embedded|shared)/(?P<token>[^/]+)/?", self._public_page)

    # ----------------------------------------------------------------- test helpers

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
        )
        with self._state:
            self._recordings.add(recording)

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
        """Whether /shared/{token} would show the replay right now."""
        with self._state:
            info = self._tokens.get(token)
            return info is not None and info.live

    def session_for(self, token: str) -> str | None:
        """The session a token was issued for (live or dead), or None if never issued."""
        with self._state:
            info = self._tokens.get(token)
            return info.session_id if info else None

    def share_config(self, session_id: str) -> dict[str, Any] | None:
        with self._state:
            share = self._shares.get(session_id)
            return self._config_json(share) if share else None

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the console: every recording's sharing state, and the recordings."""
        with self._state:
            return {
                "project_id": self.project_id,
                "shares": [
                    {
                        "session_id": sid,
                        "access_token": share.token,
                        "enabled": share.enabled,
                        "live": self._tokens[share.token].live,
                        "share_url": f"{self.url}/shared/{share.token}",
                        "created_at": share.created_at,
                    }
                    for sid, share in self._shares.items()
                ],
                "dead_tokens": sorted(t for t, info in self._tokens.items() if not info.live),
                "recordings": self._recordings.summaries(),
            }

    @property
    def query_key_requests(self) -> list[Any]:
        """Requests that authenticated with `?personal_api_key=` (they leak the key to logs)."""
        return [r for r in self.calls() if "personal_api_key" in r.query]

    # ----------------------------------------------------------------- vendor style

    def not_found_response(self, request: Request) -> Response:
        return _error(404, "invalid_request", "not_found", "Not found.")

    def method_not_allowed_response(self, request: Request) -> Response:
        return _error(
            405,
            "invalid_request",
            "method_not_allowed",
            f'Method "{request.method}" not allowed.',
        )

    def throttled_response(self) -> Response:
        # DRF's wording (singular for 1) and, unlike Zendesk/Jira, no Retry-After header:
        # the wait has to be parsed out of `detail`.
        wait = self.throttle_seconds
        unit = "second" if wait == 1 else "seconds"
        return _error(
            429,
            "throttled_error",
            "throttled",
            f"Request was throttled. Expected available in {wait} {unit}.",
        )

    def unavailable_response(self) -> Response:
        return _error(503, "server_error", "error", "A server error occurred.")

    def internal_error_response(self) -> Response:
        return _error(500, "server_error", "error", "A server error occurred.")

    # ----------------------------------------------------------------- auth

    def _authorize(self, request: Request, scope: str) -> Response | None:
        """None if the request may proceed, else the error response (401, 404 or 403)."""
        key = bearer_token(request.headers) or request.query.get("personal_api_key")
        scopes = self.api_keys.get(key) if key else None
        if scopes is None:
            return _error(
                401,
                "authentication_error",
                "authentication_failed",
                "Personal API key found in request Authorization header is invalid.",
            )
        if request.params.get("pid") != str(self.project_id):
            return self.not_found_response(request)
        if scope not in scopes and "*" not in scopes:
            return _error(
                403,
                "authentication_error",
                "permission_denied",
                f"API key missing required scope '{scope}'",
            )
        return None

    # ----------------------------------------------------------------- routes

    def _patch_sharing(self, request: Request) -> Response:
        denied = self._authorize(request, "sharing_configuration:write")
        if denied:
            return denied
        if request.json_error is not None or not isinstance(request.json, dict):
            return _error(
                400,
                "validation_error",
                "invalid_input",
                "JSON parse error - Expecting a JSON object.",
                "enabled",
            )
        if "enabled" not in request.json:
            return _error(400, "validation_error", "required", "This field is required.", "enabled")
        enabled = request.json["enabled"]
        if not isinstance(enabled, bool):
            return _error(
                400, "validation_error", "invalid_input", "Must be a valid boolean.", "enabled"
            )
        sid = request.params["sid"]
        if enabled:
            return json_response(200, self._enable(sid))
        with self._state:
            share = self._shares.get(sid)
            if share is None:
                # Disabling a never-shared recording still creates a (disabled) config.
                share = self._shares[sid] = _Share(
                    self._new_token(sid, live=False), False, _iso_now()
                )
            share.enabled = False
            self._tokens[share.token].live = False
            return json_response(200, self._config_json(share))

    def _enable(self, sid: str) -> dict[str, Any]:
        with self._state:
            share = self._shares.get(sid)
            if share is not None and share.enabled:
                return self._config_json(share)  # idempotent: same token
            token = self._new_token(sid, live=self.race_window <= 0)
            if self.race_window <= 0:
                share = self._shares[sid] = _Share(token, True, _iso_now())
                return self._config_json(share)
            # Race mode: nothing is visible to other requests until the window ends, so an
            # overlapping PATCH also sees "not shared" and creates its own token, as two
            # concurrent PostHog workers both insert a SharingConfiguration.
            racing = self._racing.setdefault(sid, [])
            racing.append(token)
            first = racing[0] == token
        self._sleep(self.race_window)
        with self._state:
            created = _iso_now()
            if first:
                # PostHog collapses the duplicates and keeps the first; later ones expire.
                self._shares[sid] = _Share(token, True, created)
                self._tokens[token].live = True
                self._racing.pop(sid, None)
            # The loser's response still says enabled: that is the trap.
            return self._config_json(_Share(token, True, created))

    def _get_sharing(self, request: Request) -> Response:
        denied = self._authorize(request, "sharing_configuration:read")
        if denied:
            return denied
        with self._state:
            share = self._shares.get(request.params["sid"])
            if share is not None:
                return json_response(200, self._config_json(share))
        # Never shared: PostHog answers with an unsaved config and a token that works nowhere.
        return json_response(
            200,
            {
                "created_at": None,
                "enabled": False,
                "access_token": secrets.token_urlsafe(16),
                "password_required": False,
                "settings": {},
                "share_passwords": [],
            },
        )

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

    def _get_project(self, request: Request) -> Response:
        denied = self._authorize(request, "project:read")
        if denied:
            return denied
        return json_response(200, {"id": self.project_id, "name": "Sandbox project"})

    def _public_page(self, request: Request) -> Response:
        token = request.params["token"]
        with self._state:
            info = self._tokens.get(token)
            session_id = info.session_id if info and info.live else None
        if session_id is None:
            return html_response(
                404,
                "<!doctype html><html><head><title>Not found</title></head>"
                "<body><h1>This replay is not shared or the link has expired.</h1></body></html>",
            )
        sid = html.escape(session_id)
        return html_response(
            200,
            "<!doctype html><html><head><title>Session replay</title></head><body>"
            f'<h1>Session replay</h1><p>Recording <code id="session-id">{sid}</code></p>'
            '<div class="player">[sandbox player]</div></body></html>',
        )

    # ----------------------------------------------------------------- internals

    def _new_token(self, sid: str, *, live: bool) -> str:
        token = secrets.token_urlsafe(16)
        self._tokens[token] = _Token(session_id=sid, live=live)
        return token

    @staticmethod
    def _config_json(share: _Share) -> dict[str, Any]:
        return {
            "created_at": share.created_at,
            "enabled": share.enabled,
            "access_token": share.token,
            "password_required": False,
            "settings": {},
            "share_passwords": [],
        }
