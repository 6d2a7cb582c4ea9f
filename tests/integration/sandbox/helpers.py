"""Shared by the sandbox tests: an ADF sample, a minimal double, and sessions set up with each
vendor's credentials."""

from __future__ import annotations

from typing import Any

import requests

from sandbox.doubles import JiraDouble, PostHogDouble, ZendeskDouble
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
