"""Jira: the replay link as a remote link and a comment on an issue.

The two writes of a job are plain JSON POSTs sent through
``integrations.http.JsonApi`` (no redirects followed, no retries, the request
budget asked first):

* ``POST /rest/api/{v}/issue/{key}/remotelink`` with a ``globalId``: Jira
  upserts on it, so posting again updates the link instead of adding another
  (the library's ``add_remote_link`` would first list application links on
  every call, and ``add_simple_link`` sends no ``globalId``);
* ``POST /rest/api/{v}/issue/{key}/comment``: a wiki-markup string for v2, an
  Atlassian Document Format document for v3.

The library's ``add_comment`` would send the same request through its
``ResilientSession`` and build a ``Comment`` resource from the answer, CPU
spent on an object nothing reads. The ``jira`` library is
kept for reading an issue's comments (the duplicate check after an uncertain
write) and the credentials check, with its network habits switched off:
``get_server_info=False`` (no ``serverInfo`` call per client),
``max_retries=0`` (its ResilientSession re-sends POSTs after resets and sleeps
in-thread), a ``(connect, read)`` timeout and no redirects. ``JIRAError`` is
never turned into a string: its text includes the request headers,
Authorization included.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from jira import JIRA, JIRAError
from requests.auth import HTTPBasicAuth

from integrations.errors import IntegrationError, RetryLater, status_failure, transport_failure
from integrations.http import (
    ErrorStatus,
    JsonApi,
    RedirectRefused,
    Throttle,
    Timeouts,
    is_success,
    mount_adapter,
    refuse_redirects,
)
from integrations.retries import (
    call_with_retries,
)

SYSTEM = "Jira"
T = TypeVar("T")

#: Comments are read in pages of this size when checking for a duplicate.
COMMENT_PAGE_SIZE = 100


@dataclass(frozen=True)
class JiraRemoteLink:
    global_id: str
    url: str
    title: str
    summary: str


@dataclass(frozen=True)
class JiraComment:
    #: A wiki-markup string for API v2, an Atlassian Document Format dict for v3.
    body: str | dict[str, Any]
    visibility: dict[str, str] | None = None


def _error_text(response: requests.Response | None) -> str:
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    messages = [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        messages += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(messages)[:300]


class JiraIssues:
    """Writes to Jira issues. One instance per thread."""

    def __init__(
        self,
        url: str,
        timeouts: Timeouts,
        api_version: int,
        email: str | None = None,
        api_token: str | None = None,
        personal_access_token: str | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        auth: dict[str, Any]
        if personal_access_token is not None:
            auth = {"token_auth": personal_access_token}
            self._api = JsonApi(
                f"{url.rstrip('/')}/rest/api/{api_version}",
                timeouts,
                headers={"Authorization": f"Bearer {personal_access_token}"},
                throttle=throttle,
                system=SYSTEM,
            )
        else:
            assert email is not None and api_token is not None
            auth = {"basic_auth": (email, api_token)}
            self._api = JsonApi(
                f"{url.rstrip('/')}/rest/api/{api_version}",
                timeouts,
                auth=HTTPBasicAuth(email, api_token),
                throttle=throttle,
                system=SYSTEM,
            )
        self.api_version = api_version
        #: Project key -> whether it is a service desk project (it does not change).
        self._service_desk: dict[str, bool] = {}
        self._jira = JIRA(
            server=url,
            options={"rest_api_version": str(api_version)},
            get_server_info=False,
            max_retries=0,
            timeout=timeouts,
            **auth,
        )
        # Never sleep inside the library, whatever the server says.
        self._jira._session.max_retry_delay = 0
        mount_adapter(self._jira._session, throttle, system=SYSTEM)
        refuse_redirects(self._jira._session)
        if not urllib.request.getproxies():
            self._jira._session.trust_env = False  # see integrations.http.configure_session

    def _failure(
        self, response: requests.Response, issue: str, what: str, *, is_write: bool
    ) -> IntegrationError:
        status = response.status_code
        text = _error_text(response)
        if status == 401:
            reason = "Jira rejected the credentials (401)"
        elif status == 403:
            reason = (
                f"Jira refused to let the account {what} on {issue} (403): check its permissions"
            )
        elif status == 404:
            reason = f"Jira issue {issue} does not exist or the account cannot see it (404)"
        elif status == 400:
            reason = f"Jira refused to {what} on {issue} (400): {text or 'invalid request'}"
        elif status == 429:
            reason = "Jira is rate limiting the account (429)"
        elif status >= 500:
            reason = f"Jira had a server error ({status})"
        else:
            reason = f"Jira refused to {what} on {issue} ({status}): {text}"
        return status_failure(SYSTEM, response, reason, is_write=is_write)

    def _call(
        self, issue: str, what: str, call: Callable[[], T], *, is_write: bool, repeatable: bool
    ) -> T:
        def attempt() -> T:
            try:
                return call()
            except (ErrorStatus, RedirectRefused) as exc:
                raise self._failure(exc.response, issue, what, is_write=is_write) from None
            except JIRAError as exc:
                if exc.response is None:
                    raise RetryLater(
                        SYSTEM, f"Jira gave no answer while trying to {what}"
                    ) from None
                raise self._failure(exc.response, issue, what, is_write=is_write) from None
            except requests.RequestException as exc:
                raise transport_failure(
                    SYSTEM, f"{what} on {issue}", exc, is_write=is_write
                ) from None

        return call_with_retries(attempt, repeatable=repeatable)

    def upsert_remote_link(self, issue: str, link: JiraRemoteLink) -> None:
        """Create or update (by ``globalId``) the remote link. Safe to repeat."""
        payload = {
            "globalId": link.global_id,
            "application": {"type": "com.posthog", "name": "PostHog"},
            "relationship": "session replay",
            "object": {
                "url": link.url,
                "title": link.title,
                "summary": link.summary,
                "icon": {"url16x16": "https://posthog.com/favicon-16x16.png", "title": "PostHog"},
            },
        }
        self._call(
            issue,
            "add a remote link",
            lambda: self._post(issue, "remotelink", payload),
            is_write=True,
            repeatable=True,
        )

    def remove_remote_link(self, issue: str, global_id: str) -> None:
        """Delete the remote link with ``global_id``; one already gone is fine. Safe to repeat."""
        url = (
            f"{self._api.base_url}/issue/{quote(issue, safe='')}/remotelink"
            f"?globalId={quote(global_id, safe='')}"
        )

        def delete() -> None:
            response = self._api.send("DELETE", url)
            # 404: no link with that globalId (removed already, or by a person).
            if not is_success(response) and response.status_code != 404:
                raise ErrorStatus(response)

        self._call(issue, "remove a remote link", delete, is_write=True, repeatable=True)

    def is_service_desk(self, issue: str) -> bool:
        """Whether the issue is in a Jira Service Management project (asked once per project)."""
        project = issue.rpartition("-")[0]
        known = self._service_desk.get(project)
        if known is not None:
            return known
        url = f"{self._api.base_url}/issue/{quote(issue, safe='')}?fields=project"

        def read() -> bool:
            response = self._api.send("GET", url)
            if not is_success(response):
                raise ErrorStatus(response)
            fields = response.json().get("fields") or {}
            kind = (fields.get("project") or {}).get("projectTypeKey")
            return bool(kind == "service_desk")

        found = self._call(issue, "read the issue", read, is_write=False, repeatable=True)
        self._service_desk[project] = found
        return found

    def reporter_email(self, issue: str) -> str | None:
        """The email of the issue's reporter (None: no reporter, or the site hides emails)."""
        url = f"{self._api.base_url}/issue/{quote(issue, safe='')}?fields=reporter"

        def read() -> str | None:
            response = self._api.send("GET", url)
            if not is_success(response):
                raise ErrorStatus(response)
            fields = response.json().get("fields") or {}
            email = (fields.get("reporter") or {}).get("emailAddress")
            return email if isinstance(email, str) and email.strip() else None

        return self._call(issue, "read the reporter", read, is_write=False, repeatable=True)

    def add_comment(self, issue: str, comment: JiraComment) -> None:
        """Add a comment. Not safe to repeat.

        On a service desk issue, a comment added through the API may be shown to the
        customer: it is marked internal, for agents only.
        """
        payload: dict[str, Any] = {"body": comment.body}
        if comment.visibility:
            payload["visibility"] = comment.visibility
        if self.is_service_desk(issue):
            payload["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
        self._call(
            issue,
            "add a comment",
            lambda: self._post(issue, "comment", payload),
            is_write=True,
            repeatable=False,
        )

    def _post(self, issue: str, what: str, payload: dict[str, Any]) -> None:
        url = f"{self._api.base_url}/issue/{quote(issue, safe='')}/{what}"
        response = self._api.send("POST", url, payload)
        if not is_success(response):
            raise ErrorStatus(response)

    def has_comment_containing(self, issue: str, *markers: str) -> bool:
        """Whether any comment on the issue contains any of ``markers`` (reads every page once)."""
        url = self._jira._get_url(f"issue/{issue}/comment")

        def scan() -> bool:
            start = 0
            while True:
                response = self._jira._session.get(
                    url, params={"startAt": start, "maxResults": COMMENT_PAGE_SIZE}
                )
                page = response.json()
                comments = page.get("comments") or []
                for comment in comments:
                    body = json.dumps(comment.get("body"), ensure_ascii=False)
                    if any(marker in body for marker in markers):
                        return True
                start += len(comments)
                if not comments or start >= int(page.get("total", 0)):
                    return False

        return self._call(issue, "read the comments", scan, is_write=False, repeatable=True)

    def check(self) -> str:
        me = self._call(
            "(account)", "read the account", self._jira.myself, is_write=False, repeatable=True
        )
        name = me.get("emailAddress") or me.get("displayName") or me.get("name") or "?"
        return f"authenticated as {name} (REST API v{self.api_version})"
