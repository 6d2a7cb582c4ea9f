"""integrations.http.JsonApi against a real HTTP server (the doubles' base class)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from requests.auth import HTTPBasicAuth

from integrations.http import JsonApi, is_success, redirect_reason
from sandbox.doubles.base import Double, Request, Response, json_response


class Things(Double):
    """Answers every path; a 'proxy' when the request line carries an absolute URL."""

    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r".*", self._answer)
        self.route("PUT", r".*", self._answer)

    def _answer(self, request: Request) -> Response:
        return json_response(200, {"path": request.path, "json": request.json})


@pytest.fixture
def things() -> Iterator[Things]:
    with Things() as double:
        yield double


def test_json_body_headers_and_credentials(things: Things) -> None:
    api = JsonApi(things.url, (2, 2), auth=HTTPBasicAuth("agent@example.com/token", "s3cret"))
    response = api.send("PUT", f"{things.url}/api/v2/tickets/7.json", {"ticket": {"n": 1}})
    assert is_success(response)
    assert response.json() == {"path": "/api/v2/tickets/7.json", "json": {"ticket": {"n": 1}}}
    (call,) = things.calls()
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Accept"] == "application/json"
    assert call.headers["User-Agent"].startswith("replay-attach/")
    assert call.headers["Authorization"].startswith("Basic ")
    assert "s3cret" not in call.path and not call.query


def test_connections_are_kept_alive_across_requests(things: Things) -> None:
    api = JsonApi(things.url, (2, 2))
    for _ in range(5):
        assert api.send("GET", f"{things.url}/x").status_code == 200
    assert len({call.client_port for call in things.calls()}) == 1


def test_the_environment_proxy_is_used(things: Things, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy settings are read once, when the client is built, and then honoured."""
    monkeypatch.setenv("HTTP_PROXY", things.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    api = JsonApi("http://vendor.invalid", (2, 2))
    response = api.send("GET", "http://vendor.invalid/api/v2/users/me.json")
    assert response.status_code == 200
    # The proxy received the absolute URL of the vendor.
    (call,) = things.calls()
    assert call.path == "http://vendor.invalid/api/v2/users/me.json"


def test_a_redirect_is_returned_not_followed(things: Things) -> None:
    things.fail_next("redirect")
    api = JsonApi(things.url, (2, 2))
    response = api.send("PUT", f"{things.url}/api/v2/tickets/7.json", {"ticket": {}})
    assert response.status_code == 301 and not is_success(response)
    assert response.headers["Location"].startswith("https://")
    assert len(things.calls()) == 1


def test_a_redirects_reason_names_where_it_pointed_but_no_secret() -> None:
    response = requests.Response()
    response.status_code = 302
    response.headers["Location"] = "https://user:hunter2@api.example.com:8443/v2/x?token=phx_secret"
    reason = redirect_reason("PostHog", response)
    assert reason == (
        "PostHog answered with a redirect (302) to https://api.example.com:8443/v2/x: "
        "check the configured URL (https, host name)"
    )
    response.headers["Location"] = "/login?next=/x"
    assert "to /login:" in redirect_reason("Zendesk", response)
