"""The comment routes of the Jira double: add a comment (v2 wiki text or v3 ADF, with its
visibility and properties) and list an issue's comments, a page at a time. A service desk issue's
comment is public unless its `sd.public.comment` property says it is internal. `JiraDouble`
(jira.py) mixes `CommentRoutes` in and registers the routes.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any, Protocol

from sandbox.doubles import jira_answers as answers
from sandbox.doubles.jira_answers import NOT_FOUND_ISSUE, error
from sandbox.doubles.jira_links import JiraHost
from sandbox.doubles.jira_validation import comment_body_error, visibility_error
from sandbox.doubles.messages import Request, Response, json_response

# The comment property by which Jira Service Management keeps a comment from the customer.
SD_PUBLIC_COMMENT = "sd.public.comment"


def is_internal(properties: Any) -> bool:
    """Whether a comment's `properties` make it internal on a service desk issue: an entry
    `{"key": "sd.public.comment", "value": {"internal": true}}` (a JSON true, not "true")."""
    if not isinstance(properties, list):
        return False
    return any(
        isinstance(entry, dict)
        and entry.get("key") == SD_PUBLIC_COMMENT
        and isinstance(entry.get("value"), dict)
        and entry["value"].get("internal") is True
        for entry in properties
    )


class _Host(JiraHost, Protocol):
    """What the comment routes use of `JiraDouble` besides."""

    email: str
    roles: set[str]
    groups: set[str]
    _next_comment_id: int

    def _comment_json(
        self, issue: dict[str, Any], comment: dict[str, Any], version: str
    ) -> dict[str, Any]: ...


class CommentRoutes:
    """The handlers of `.../issue/{key}/comment`; each takes the state lock around what it
    reads or changes."""

    def _add_comment(self: _Host, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        version = self._version(request)
        payload = request.json
        if not isinstance(payload, dict):
            return answers.not_an_object()
        violation = self._check_schema("Comment", request)
        if violation:
            return violation
        body = payload.get("body")
        problem = comment_body_error(body, version)
        if problem:
            return problem
        visibility = payload.get("visibility")
        if visibility is not None:
            problem = visibility_error(visibility, self.roles, self.groups)
            if problem:
                return problem
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            now = answers.timestamp(datetime.now(timezone.utc))
            comment: dict[str, Any] = {
                "id": str(self._next_comment_id),
                "body": copy.deepcopy(body),
                "api_version": version,
                "created": now,
                "updated": now,
                # Hidden from the customer; only a service desk issue has customers, so a
                # software issue's comment is never internal, whatever its properties say.
                "internal": bool(issue.get("service_desk"))
                and is_internal(payload.get("properties")),
            }
            if visibility is not None:
                comment["visibility"] = dict(visibility)
            if payload.get("properties"):
                comment["properties"] = copy.deepcopy(payload["properties"])
            self._next_comment_id += 1
            issue["comments"].append(comment)
            return json_response(201, self._comment_json(issue, comment, version))

    def _list_comments(self: _Host, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        try:
            start = max(0, int(request.query.get("startAt", "0")))
            size = min(5000, max(0, int(request.query.get("maxResults", "50"))))
        except ValueError:
            return error(400, ["startAt and maxResults must be integers."])
        version = self._version(request)
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            comments = issue["comments"]
            page = [self._comment_json(issue, c, version) for c in comments[start : start + size]]
            return json_response(
                200,
                {"startAt": start, "maxResults": size, "total": len(comments), "comments": page},
            )

    def _comment_json(
        self: _Host, issue: dict[str, Any], comment: dict[str, Any], version: str
    ) -> dict[str, Any]:
        return answers.comment_json(self.url, self.email, issue, comment, version)
