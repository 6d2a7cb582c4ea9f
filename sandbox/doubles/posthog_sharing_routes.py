"""The sharing routes of the PostHog double: `PATCH .../sharing` (enable or disable a recording's
public link), `GET .../sharing` and `POST .../sharing/refresh/`, with the duplicate-config race of
two concurrent enables. `PostHogDouble` (posthog.py) mixes `SharingRoutes` in and registers the
routes; the sharing state they change is in posthog_sharing.py.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sandbox.doubles.messages import Request, Response, json_response
from sandbox.doubles.posthog_answers import error, permission_denied
from sandbox.doubles.posthog_sharing import (
    Share,
    SharingStore,
    config_json,
    iso_now,
    unsaved_config_json,
)


class _Host(Protocol):
    """What the routes use of `PostHogDouble`."""

    race_window: float
    refresh_grace_seconds: float
    public_sharing_allowed: bool
    _sharing: SharingStore

    @property
    def reenable(self) -> str: ...

    @property
    def _state(self) -> AbstractContextManager[Any]: ...

    def _authorize(self, request: Request, scope: str) -> Response | None: ...

    def _enable(self, sid: str) -> dict[str, Any]: ...

    def _sleep(self, seconds: float) -> None: ...


class SharingRoutes:
    """The handlers of `.../session_recordings/{id}/sharing[/refresh/]`; each takes the state
    lock around what it reads or changes, and `_enable` lets go of it for the race window."""

    def _patch_sharing(self: _Host, request: Request) -> Response:
        denied = self._authorize(request, "sharing_configuration:write")
        if denied:
            return denied
        if request.json_error is not None or not isinstance(request.json, dict):
            return error(
                400,
                "validation_error",
                "invalid_input",
                "JSON parse error - Expecting a JSON object.",
                "enabled",
            )
        if "enabled" not in request.json:
            return error(400, "validation_error", "required", "This field is required.", "enabled")
        enabled = request.json["enabled"]
        if not isinstance(enabled, bool):
            return error(
                400, "validation_error", "invalid_input", "Must be a valid boolean.", "enabled"
            )
        if enabled and not self.public_sharing_allowed:
            # PostHog's sharing permission check: turning a link off stays allowed.
            return permission_denied("Public sharing is disabled for this organization.")
        sid = request.params["sid"]
        if enabled:
            return json_response(200, self._enable(sid))
        with self._state:
            return json_response(200, config_json(self._sharing.disable(sid)))

    def _enable(self: _Host, sid: str) -> dict[str, Any]:
        sharing = self._sharing
        with self._state:
            share = sharing.shares.get(sid)
            if share is not None and share.enabled:
                return config_json(share)  # idempotent: same token
            if share is not None and self.reenable == "same_token":
                return config_json(sharing.reenable(share))
            if self.race_window <= 0:
                return config_json(sharing.new_share(sid, enabled=True))
            # Race mode: nothing is visible to other requests until the window ends, so an
            # overlapping PATCH also sees "not shared" and creates its own token, as two
            # concurrent PostHog workers both insert a SharingConfiguration.
            token = sharing.new_token(sid, live=False)
            racing = sharing.racing.setdefault(sid, [])
            racing.append(token)
            first = racing[0] == token
        self._sleep(self.race_window)
        with self._state:
            created = iso_now()
            if first:
                # PostHog collapses the duplicates and keeps the first; later ones expire.
                sharing.shares[sid] = Share(token, True, created)
                sharing.tokens[token].live = True
                sharing.racing.pop(sid, None)
            # The loser's response still says enabled: that is the trap.
            return config_json(Share(token, True, created))

    def _refresh_sharing(self: _Host, request: Request) -> Response:
        """`POST .../sharing/refresh/`: a new token; the old one serves `refresh_grace_seconds`
        more if its config was enabled, else it stays dead. The body is not read."""
        denied = self._authorize(request, "sharing_configuration:write")
        if denied:
            return denied
        with self._state:
            share = self._sharing.rotate(request.params["sid"], self.refresh_grace_seconds)
            return json_response(200, config_json(share))

    def _get_sharing(self: _Host, request: Request) -> Response:
        denied = self._authorize(request, "sharing_configuration:read")
        if denied:
            return denied
        with self._state:
            share = self._sharing.shares.get(request.params["sid"])
            if share is not None:
                return json_response(200, config_json(share))
        # Never shared: PostHog answers with an unsaved config and a token that works nowhere.
        return json_response(200, unsaved_config_json())
