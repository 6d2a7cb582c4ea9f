"""integrations.http.JsonApi, the transport, against real HTTP servers (the doubles' base class)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme
from requests.auth import HTTPBasicAuth

from integrations.errors import RetryLater, redirect_reason, transport_failure
from integrations.http import (
    JsonApi,
    Throttle,
    is_success,
)
from sandbox.doubles.base import Double, Request, Response, json_response
from tests.raw_server import RawServer


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
    api = JsonApi(
        things.url, (2, 2), auth=HTTPBasicAuth("agent@example.com/token", "s3cret"), system="Test"
    )
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
    api = JsonApi(things.url, (2, 2), system="Test")
    for _ in range(5):
        assert api.send("GET", f"{things.url}/x").status_code == 200
    assert len({call.client_port for call in things.calls()}) == 1


def test_the_environment_proxy_is_used(things: Things, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy settings are read once, when the client is built, and then honoured."""
    monkeypatch.setenv("HTTP_PROXY", things.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    api = JsonApi("http://vendor.invalid", (2, 2), system="Test")
    monkeypatch.delenv("HTTP_PROXY")  # not looked at again
    response = api.send("GET", "http://vendor.invalid/api/v2/users/me.json")
    assert response.status_code == 200
    # The proxy received the absolute URL of the vendor.
    (call,) = things.calls()
    assert call.path == "http://vendor.invalid/api/v2/users/me.json"


def test_a_redirect_is_returned_not_followed(things: Things) -> None:
    things.fail_next("redirect")
    api = JsonApi(things.url, (2, 2), system="Test")
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


def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_http_proxy_credentials_go_to_the_proxy(
    things: Things, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_settings(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", things.url.replace("http://", "http://proxy%40user:p%3Ass@"))
    api = JsonApi("http://vendor.invalid", (2, 2), system="Test")
    assert api.send("GET", "http://vendor.invalid/x").status_code == 200
    (call,) = things.calls()
    assert call.headers["Proxy-Authorization"] == "Basic cHJveHlAdXNlcjpwOnNz"  # proxy@user:p:ss


def test_no_proxy_is_honoured(things: Things, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxy_settings(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    api = JsonApi(things.url, (2, 2), system="Test")
    assert api.send("GET", f"{things.url}/direct").status_code == 200
    (call,) = things.calls()
    assert call.path == "/direct"


def test_a_proxy_that_refuses_the_connection_is_known_never_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_proxy_settings(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    api = JsonApi("http://vendor.invalid", (2, 2), system="Test")
    with pytest.raises(requests.ConnectionError) as raised:
        api.send("PUT", "http://vendor.invalid/x", {"n": 1})
    failure = transport_failure("Zendesk", "add a note", raised.value, is_write=True)
    assert failure.never_sent and not failure.maybe_applied


def test_the_request_budget_is_asked_before_every_request(things: Things) -> None:
    asked: list[int] = []

    def throttle() -> None:
        asked.append(len(things.calls()))
        if len(asked) == 3:
            raise RetryLater("Zendesk", "request budget used up")

    budget: Throttle = throttle
    api = JsonApi(things.url, (2, 2), throttle=budget, system="Test")
    assert api.send("PUT", f"{things.url}/a", {"n": 1}).status_code == 200
    assert api.send("GET", f"{things.url}/b").status_code == 200
    with pytest.raises(RetryLater, match="budget"):
        api.send("PUT", f"{things.url}/c", {"n": 3})
    # Asked before each request was sent; the refused one never went out.
    assert asked == [0, 1, 2]
    assert [c.path for c in things.calls()] == ["/a", "/b"]


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(things: Things) -> None:
    """requests checks the fixed headers (credentials included) when the client is built."""
    for value in ("1\r\nX-Injected: 1", "1\nX-Injected: 1", "Bearer phx_key\r\n"):
        with pytest.raises(requests.exceptions.InvalidHeader, match="return character"):
            JsonApi(things.url, (2, 2), headers={"Authorization": value}, system="Test")
    assert things.calls() == [] and things.close_idle_connections() == 0


def _wait_until_readable(api: JsonApi) -> None:
    """Until the client's idle pooled connection has seen the server hang up."""
    (conn,) = api._pool.pool.queue  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not conn.is_connected:
            return
        time.sleep(0.01)
    raise AssertionError("the server's close never reached the client")


def test_a_connection_the_server_closed_while_idle_is_replaced_before_writing(
    things: Things,
) -> None:
    api = JsonApi(things.url, (2, 2), system="Test")
    assert api.send("PUT", f"{things.url}/a", {"n": 1}).status_code == 200
    assert things.close_idle_connections() == 1
    _wait_until_readable(api)
    # Not an error, not "maybe applied": the write goes out once, on a new connection.
    assert api.send("PUT", f"{things.url}/b", {"n": 2}).status_code == 200
    first, second = things.calls()
    assert (first.path, second.path) == ("/a", "/b")
    assert first.client_port != second.client_port


@pytest.mark.parametrize("reused", [False, True], ids=["new connection", "reused connection"])
def test_a_write_whose_answer_is_lost_is_never_resent(things: Things, reused: bool) -> None:
    """libcurl resends a request when a reused connection dies unanswered; this must not."""
    api = JsonApi(things.url, (2, 2), system="Test")
    if reused:
        assert api.send("GET", f"{things.url}/warm-up").status_code == 200
    things.fail_next("lost_response")
    with pytest.raises(requests.ConnectionError) as raised:
        api.send("PUT", f"{things.url}/api/v2/tickets/7.json", {"ticket": {}})
    failure = transport_failure("Zendesk", "add a note", raised.value, is_write=True)
    assert failure.maybe_applied and not failure.never_sent
    assert [c.path for c in things.calls()].count("/api/v2/tickets/7.json") == 1
    # The broken connection is not reused.
    assert api.send("GET", f"{things.url}/after").status_code == 200


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_is_known_never_sent() -> None:
    port = _closed_port()
    api = JsonApi(f"http://127.0.0.1:{port}", (2, 2), system="Test")
    with pytest.raises(requests.ConnectionError) as raised:
        api.send("PUT", f"http://127.0.0.1:{port}/x", {"n": 1})
    failure = transport_failure("Jira", "add a comment", raised.value, is_write=True)
    assert failure.never_sent and not failure.maybe_applied


def test_a_connect_timeout_is_known_never_sent() -> None:
    """A listener whose accept queue is full drops new connection attempts (Linux)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filling: list[socket.socket] = []
    try:
        for _ in range(4):  # more than the queue holds; those left over wait, unanswered
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            filling.append(sock)
        time.sleep(0.1)
        api = JsonApi(f"http://127.0.0.1:{port}", (0.3, 2), system="Test")
        with pytest.raises(requests.ConnectTimeout) as raised:
            api.send("PUT", f"http://127.0.0.1:{port}/x", {"n": 1})
    finally:
        for sock in filling:
            sock.close()
        listener.close()
    failure = transport_failure("Jira", "add a comment", raised.value, is_write=True)
    assert failure.never_sent and not failure.maybe_applied
    assert "connection failed" in failure.reason


def test_a_slow_answer_is_a_read_timeout(things: Things) -> None:
    things.slow_seconds = 2.0
    things.fail_next("slow")
    api = JsonApi(things.url, (2, 0.3), system="Test")
    with pytest.raises(requests.ReadTimeout) as raised:
        api.send("PUT", f"{things.url}/x", {"n": 1})
    failure = transport_failure("Zendesk", "add a note", raised.value, is_write=True)
    assert failure.maybe_applied and "read timeout" in failure.reason
    assert len(things.calls()) == 1


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_things(ca: trustme.CA) -> Iterator[Things]:
    double = Things()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "vendor.test").configure_cert(context)
    double.tls_context = context
    with double:
        yield double


@pytest.fixture
def trusted_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test CA as the CA bundle (REQUESTS_CA_BUNDLE), and no proxy settings."""
    _no_proxy_settings(monkeypatch)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))


@pytest.mark.usefixtures("trusted_ca")
def test_https_is_verified_against_the_configured_ca_bundle(tls_things: Things) -> None:
    api = JsonApi(tls_things.url, (2, 2), system="Test")
    assert api.send("PUT", f"{tls_things.url}/x", {"n": 1}).json()["json"] == {"n": 1}


def test_an_untrusted_certificate_is_refused_before_anything_is_sent(
    tls_things: Things, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_settings(monkeypatch)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    api = JsonApi(
        tls_things.url, (2, 2), system="Test"
    )  # certifi's bundle does not know the test CA
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED") as raised:
        api.send("PUT", f"{tls_things.url}/x", {"n": 1})
    assert tls_things.calls() == []
    # Refused in the TLS handshake, before the request was written.
    failure = transport_failure("Zendesk", "add a note", raised.value, is_write=True)
    assert failure.never_sent and not failure.maybe_applied


@pytest.mark.usefixtures("trusted_ca")
def test_a_certificate_for_another_host_is_refused(ca: trustme.CA) -> None:
    double = Things()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("elsewhere.test").configure_cert(context)
    double.tls_context = context
    with double:
        api = JsonApi(double.url, (2, 2), system="Test")
        with pytest.raises(requests.exceptions.SSLError, match="match") as raised:
            api.send("PUT", f"{double.url}/x", {"n": 1})
        assert double.calls() == []
    assert transport_failure("Zendesk", "add a note", raised.value, is_write=True).never_sent


class ConnectProxy(RawServer):
    """A forward proxy that only tunnels (CONNECT), recording each request head."""

    def __init__(self, hosts: dict[str, str]) -> None:
        #: Name resolution at the proxy's end (the client never resolves the vendor).
        self.hosts = hosts
        self.heads: list[str] = []
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        self.heads.append(head.decode("latin-1"))
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        upstream = socket.create_connection((self.hosts.get(host, host), int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.usefixtures("trusted_ca")
def test_https_goes_through_the_proxy_in_a_tunnel(
    tls_things: Things, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ConnectProxy({"vendor.test": "127.0.0.1"})
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://agent:pw@"))
        vendor = tls_things.url.replace("127.0.0.1", "vendor.test")
        api = JsonApi(
            vendor, (2, 2), auth=HTTPBasicAuth("a@example.com/token", "s3cret"), system="Test"
        )
        for n in range(3):
            assert api.send("PUT", f"{vendor}/x", {"n": n}).status_code == 200
    finally:
        proxy.close()
    (head,) = proxy.heads  # one tunnel, kept alive
    assert head.startswith(f"CONNECT vendor.test:{tls_things.port} HTTP/1.")
    assert "Proxy-Authorization: Basic YWdlbnQ6cHc=" in head
    assert "s3cret" not in head and "Authorization: Basic YUBl" not in head
    assert [c.json for c in tls_things.calls()] == [{"n": 0}, {"n": 1}, {"n": 2}]
