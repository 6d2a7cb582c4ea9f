"""The remote-link routes of the Jira double: upsert by globalId, list, get, and delete by
globalId or by id. `JiraDouble` (jira.py) mixes `RemoteLinkRoutes` in and registers the routes.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sandbox.doubles import jira_answers as answers
from sandbox.doubles.jira_answers import NOT_FOUND_ISSUE, error
from sandbox.doubles.jira_validation import link_object_error
from sandbox.doubles.messages import Request, Response, json_response

NO_LINK = "No link found."


class JiraHost(Protocol):
    """What the route mixins (remote links, comments) use of `JiraDouble`."""

    issues: dict[str, dict[str, Any]]

    @property
    def url(self) -> str: ...

    @property
    def _state(self) -> AbstractContextManager[Any]: ...

    def _guard(self, request: Request) -> Response | None: ...

    def _find(self, request: Request) -> dict[str, Any] | None: ...

    def _version(self, request: Request) -> str: ...

    def _check_schema(self, name: str, request: Request) -> Response | None: ...


class _Host(JiraHost, Protocol):
    """What the remote-link routes use besides."""

    _next_link_id: int


class RemoteLinkRoutes:
    """The handlers of `.../issue/{key}/remotelink[/{linkId}]`; each takes the state lock."""

    def _upsert_link(self: _Host, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        payload = request.json
        if not isinstance(payload, dict):
            return answers.not_an_object()
        violation = self._check_schema("RemoteIssueLinkRequest", request)
        if violation:
            return violation
        obj = payload.get("object")
        problem = link_object_error(obj)
        if problem:
            return problem
        version = self._version(request)
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            global_id = payload.get("globalId")
            existing = next(
                (
                    link
                    for link in issue["remote_links"]
                    if global_id is not None and link["globalId"] == global_id
                ),
                None,
            )
            fields = {
                # Upsert semantics: whatever the update leaves out becomes null.
                "globalId": global_id,
                "application": copy.deepcopy(payload.get("application")),
                "relationship": payload.get("relationship"),
                "object": copy.deepcopy(obj),
            }
            if existing is not None:
                existing.update(fields)
                status, link = 200, existing
            else:
                link = {"id": self._next_link_id, **fields}
                self._next_link_id += 1
                issue["remote_links"].append(link)
                status = 201
            self_url = answers.link_self(self.url, issue, link, version)
            return json_response(status, {"id": link["id"], "self": self_url})

    def _list_links(self: _Host, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        wanted = request.query.get("globalId")
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            links = [
                answers.link_json(self.url, issue, link, self._version(request))
                for link in issue["remote_links"]
                if wanted is None or link["globalId"] == wanted
            ]
        if wanted is not None:
            # With ?globalId= Jira answers with the single link, not a list.
            return json_response(200, links[0]) if links else error(404, [NO_LINK])
        return json_response(200, links)

    def _get_link(self: _Host, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            for link in issue["remote_links"]:
                if str(link["id"]) == request.params["link"]:
                    link_json = answers.link_json(self.url, issue, link, self._version(request))
                    return json_response(200, link_json)
        return error(404, [NO_LINK])

    def _delete_link_by_global_id(self: _Host, request: Request) -> Response:
        """DELETE .../remotelink?globalId=<url-encoded>: 204, or 404 when the issue is unknown
        or has no link with that globalId (Jira's OpenAPI: "Returned if the issue or remote
        issue link is not found"; it is not an idempotent 204), 400 without a globalId."""
        denied = self._guard(request)
        if denied:
            return denied
        wanted = request.query.get("globalId")
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            if not wanted:
                # The wording is ours; the status is the OpenAPI's ("a global ID isn't provided").
                return error(400, ["The globalId query parameter is required."])
            links = issue["remote_links"]
            kept = [link for link in links if link["globalId"] != wanted]
            if len(kept) == len(links):
                return error(404, [NO_LINK])
            links[:] = kept
        return Response(status=204)

    def _delete_link(self: _Host, request: Request) -> Response:
        """DELETE .../remotelink/{linkId}: 204; 404 for an unknown issue or link; 400 for a
        link of another issue (Jira's OpenAPI: "does not belong to the issue")."""
        denied = self._guard(request)
        if denied:
            return denied
        link_id = request.params["link"]
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            links = issue["remote_links"]
            for index, link in enumerate(links):
                if str(link["id"]) == link_id:
                    del links[index]
                    return Response(status=204)
            elsewhere = any(
                str(link["id"]) == link_id
                for other in self.issues.values()
                for link in other["remote_links"]
            )
        if elsewhere:
            # The wording is ours; the status is the OpenAPI's.
            return error(400, [f"Remote link {link_id} does not belong to issue {issue['key']}."])
        return error(404, [NO_LINK])
