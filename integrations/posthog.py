"""PostHog: read a session's recording, and turn it into a public embed link.

``GET /api/projects/{project}/session_recordings/{session}`` answers 404 for a
session with no recording (yet: a fresh one may still be ingested); the
sharing endpoint mints a token for any session id, so the recording is read
first.

``PATCH /api/projects/{project}/session_recordings/{session}/sharing`` with
``{"enabled": true}`` returns the sharing configuration; enabling again returns
the same token, so the PATCH is safe to repeat. Only a token from a response
whose ``enabled`` is true is trusted: a GET on a never-enabled session returns a
fresh token that does not work. The key travels only in the Authorization
header (the query-string form would put it in every access log).

Concurrent PATCHes for one session race inside PostHog and expire one of the
tokens; callers serialise minting per session (``worker.attach.ledger``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

import requests

from integrations.errors import (
    IntegrationError,
    PermanentFailure,
    RetryLater,
    SharingDisabled,
    status_failure,
    transport_failure,
)
from integrations.http import (
    JsonApi,
    Throttle,
    Timeouts,
    is_success,
)
from integrations.posthog_answers import SYSTEM, Person, Recording, person_of, recording_of
from integrations.retries import (
    call_with_retries,
)

_THROTTLE_WAIT = re.compile(r"available in (\d+) seconds?", re.IGNORECASE)


class PostHogSharing:
    """Mints share tokens for one PostHog project. One instance per thread."""

    def __init__(
        self,
        host: str,
        project_id: int,
        personal_api_key: str,
        timeouts: Timeouts,
        throttle: Throttle | None = None,
        share_settings: dict[str, bool] | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        self.project_id = project_id
        #: The enabling PATCH's body, with how the shared page shows the recording.
        self._share: dict[str, Any] = {"enabled": True}
        if share_settings:
            self._share["settings"] = dict(share_settings)
        self._api = JsonApi(
            self.host,
            timeouts,
            headers={"Authorization": f"Bearer {personal_api_key}"},
            throttle=throttle,
            system=SYSTEM,
        )
        # The public replay pages need no key, and are sent none.
        self._public = JsonApi(self.host, timeouts, headers={}, system=SYSTEM)

    def _sharing_url(self, session_id: str) -> str:
        return (
            f"{self.host}/api/projects/{self.project_id}/session_recordings/"
            f"{quote(session_id, safe='')}/sharing"
        )

    def _recording_url(self, session_id: str) -> str:
        return (
            f"{self.host}/api/projects/{self.project_id}/session_recordings/"
            f"{quote(session_id, safe='')}"
        )

    def _persons_url(self, distinct_id: str) -> str:
        query = urlencode({"distinct_id": distinct_id})
        return f"{self.host}/api/projects/{self.project_id}/persons/?{query}"

    def _failure(self, response: requests.Response, session_id: str) -> IntegrationError:
        status = response.status_code
        detail = _detail(response)
        if status == 401:
            reason = "PostHog rejected the personal API key (401)"
        elif status == 403 and "sharing is disabled" in (detail or "").lower():
            return SharingDisabled(
                SYSTEM,
                "PostHog's organisation has public sharing switched off "
                "(allow_publicly_shared_resources): no recording can get a public link",
                status=403,
            )
        elif status == 403:
            reason = (
                "PostHog refused to share the recording (403): the personal API key lacks "
                "the sharing_configuration:write scope, or the organisation disabled "
                f"public sharing{_quoted(detail)}"
            )
        elif status == 404:
            reason = (
                f"PostHog project {self.project_id} was not found or the key cannot see it (404)"
            )
        elif status == 429:
            match = _THROTTLE_WAIT.search(detail or "")
            retry_after = float(match.group(1)) if match else None
            return RetryLater(
                SYSTEM,
                "PostHog is rate limiting the personal API key (429)",
                status=429,
                retry_after=retry_after,
            )
        elif status >= 500:
            reason = f"PostHog had a server error ({status})"
        else:
            reason = f"PostHog refused to share session {session_id} ({status}){_quoted(detail)}"
        return status_failure(SYSTEM, response, reason)

    def read_recording(self, session_id: str) -> Recording | None:
        """The session's recording, or None when PostHog has none (404)."""

        def attempt() -> Recording | None:
            try:
                response = self._api.send("GET", self._recording_url(session_id))
            except requests.RequestException as exc:
                raise transport_failure(
                    SYSTEM, f"read the recording of {session_id}", exc, is_write=False
                ) from None
            if response.status_code == 404:
                return None
            if response.status_code == 403:
                raise PermanentFailure(
                    SYSTEM,
                    "PostHog refused to read the recording (403): the personal API key lacks "
                    f"the session_recording:read scope{_quoted(_detail(response))}",
                    status=403,
                )
            if not is_success(response):
                raise self._failure(response, session_id)
            return recording_of(session_id, _json(response))

        return call_with_retries(attempt, repeatable=True)

    def find_person(self, distinct_id: str) -> Person | None:
        """The person ``distinct_id`` belongs to (every one of its ids), or None when none does."""

        def attempt() -> Person | None:
            try:
                response = self._api.send("GET", self._persons_url(distinct_id))
            except requests.RequestException as exc:
                raise transport_failure(
                    SYSTEM, "look up a person by distinct id", exc, is_write=False
                ) from None
            if response.status_code == 403:
                raise PermanentFailure(
                    SYSTEM,
                    "PostHog refused to look up a person (403): the personal API key lacks "
                    f"the person:read scope{_quoted(_detail(response))}",
                    status=403,
                )
            if not is_success(response):
                raise self._failure(response, "(person lookup)")
            body = _json(response)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise RetryLater(SYSTEM, "PostHog's answer to a person lookup is not a list")
            for found in results:
                person = person_of(found, complete=True)
                if person is not None and distinct_id in person.distinct_ids:
                    return person
            return None

        return call_with_retries(attempt, repeatable=True)

    def share_recording(self, session_id: str) -> str:
        """Enable sharing and return the recording's live access token."""

        def attempt() -> str:
            try:
                response = self._api.send("PATCH", self._sharing_url(session_id), self._share)
            except requests.RequestException as exc:
                # The PATCH is idempotent, so "maybe applied" does not matter here.
                raise transport_failure(
                    SYSTEM, f"share session {session_id}", exc, is_write=False
                ) from None
            if not is_success(response):
                raise self._failure(response, session_id)
            body = _json(response)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(body, dict) or body.get("enabled") is not True:
                raise RetryLater(
                    SYSTEM, f"PostHog did not confirm sharing of session {session_id} as enabled"
                )
            if not isinstance(token, str) or not token:
                raise RetryLater(SYSTEM, "PostHog's sharing answer carried no access_token")
            return token

        return call_with_retries(attempt, repeatable=True)

    def revoke_sharing(self, session_id: str, old_token: str) -> bool:
        """End the recording's public link, for good; return whether the token was rotated.

        Disabling kills the link at once; rotating the token (``sharing/refresh/``)
        makes sure a later share gets a new one even on PostHog versions that
        bring the old token back on re-enable (a PostHog without ``refresh/``
        answers 404 or 405: the link is still dead). Then the old page must
        answer 404, or the revoke is tried again.
        """
        url = self._sharing_url(session_id)

        def disable() -> None:
            self._write(session_id, "PATCH", url, {"enabled": False})

        def confirm_dead() -> None:
            if self._serves_once(old_token):
                raise RetryLater(
                    SYSTEM, f"PostHog still serves the revoked link of session {session_id}"
                )

        call_with_retries(disable, repeatable=True)
        rotated = self.rotate_token(session_id)
        call_with_retries(confirm_dead, repeatable=True)
        return rotated

    def serves(self, token: str) -> bool:
        """Whether the public page of ``token`` answers (anything but a 404 counts)."""
        return call_with_retries(lambda: self._serves_once(token), repeatable=True)

    def _serves_once(self, token: str) -> bool:
        page = f"{self.host}/embedded/{quote(token, safe='')}"
        try:
            response = self._public.send("GET", page)
        except requests.RequestException as exc:
            raise transport_failure(
                SYSTEM, "check a shared link's page", exc, is_write=False
            ) from None
        return response.status_code != 404

    def rotate_token(self, session_id: str) -> bool:
        """Give the session's sharing a new token (``sharing/refresh/``); whether it could.

        A PostHog without ``refresh/`` answers 404 or 405: it cannot rotate, and
        re-enabling its sharing would bring the old token back.
        """
        url = self._sharing_url(session_id).rstrip("/") + "/refresh/"

        def rotate() -> bool:
            return is_success(self._write(session_id, "POST", url, None, ok=(404, 405)))

        return call_with_retries(rotate, repeatable=True)

    def _write(
        self, session_id: str, method: str, url: str, payload: Any, ok: tuple[int, ...] = ()
    ) -> requests.Response:
        """One idempotent sharing request; failures mapped as for sharing."""
        try:
            response = self._api.send(method, url, payload)
        except requests.RequestException as exc:
            raise transport_failure(
                SYSTEM, f"revoke the link of {session_id}", exc, is_write=False
            ) from None
        if not is_success(response) and response.status_code not in ok:
            raise self._failure(response, session_id)
        return response

    def check(self) -> str:
        """Verify key, scope and project without changing anything; return a summary."""
        url = self._sharing_url("replay-attach-check")
        try:
            response = self._api.send("GET", url)
        except requests.RequestException as exc:
            raise transport_failure(SYSTEM, "check the key", exc, is_write=False) from None
        if response.status_code == 403:
            raise PermanentFailure(
                SYSTEM,
                "the personal API key lacks the sharing_configuration scopes (403)",
                status=403,
            )
        if not is_success(response):
            raise self._failure(response, "replay-attach-check")
        # An unknown session: 404 says the key may read recordings, 403 that it may not.
        try:
            self.read_recording("replay-attach-check")
        except PermanentFailure as exc:
            if exc.status == 403:
                raise PermanentFailure(
                    SYSTEM,
                    "the personal API key lacks the session_recording:read scope (403)",
                    status=403,
                ) from None
            raise
        # The requester rule looks people up by distinct id.
        try:
            self.find_person("replay-attach-check")
        except PermanentFailure as exc:
            if exc.status == 403:
                raise PermanentFailure(
                    SYSTEM, "the personal API key lacks the person:read scope (403)", status=403
                ) from None
            raise
        summary = (
            f"project {self.project_id} at {self.host}, recordings, persons and sharing API "
            "reachable"
        )
        if self.public_sharing_allowed() is False:
            summary += (
                "; public sharing is switched off for the organisation "
                "(allow_publicly_shared_resources): tickets get the private replay page, for "
                "agents with a PostHog login"
            )
        return summary

    def public_sharing_allowed(self) -> bool | None:
        """The organisation's ``allow_publicly_shared_resources``; None when it cannot be read
        (the key lacks ``organization:read``: not needed otherwise)."""
        try:
            response = self._api.send("GET", f"{self.host}/api/organizations/@current/")
        except requests.RequestException as exc:
            raise transport_failure(
                SYSTEM, "read the organisation's settings", exc, is_write=False
            ) from None
        body = _json(response) if is_success(response) else None
        allowed = body.get("allow_publicly_shared_resources") if isinstance(body, dict) else None
        return allowed if isinstance(allowed, bool) else None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: requests.Response) -> str | None:
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])[:300]
    return None


def _quoted(detail: str | None) -> str:
    return f': "{detail}"' if detail else ""
