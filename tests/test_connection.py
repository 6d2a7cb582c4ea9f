"""integrations.connection against a raw TCP server that answers with scripted bytes.

The vendor doubles answer like a well-behaved server; these answers are the
legal but less common shapes (chunked, interim 1xx, close-delimited, closing
after the answer) and the broken ones a proxy or a crashing server produces.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from integrations import connection
from integrations.connection import KeptAliveConnection
from integrations.http import transport_failure
from tests.raw_server import RawServer

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'


class Scripted(RawServer):
    """Answers the n-th request with the n-th script entry: (bytes, close the connection after)."""

    def __init__(self, *script: tuple[bytes, bool]) -> None:
        self.script = list(script)
        self.requests: list[bytes] = []
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        # A client that gave up on a broken answer resets the connection: routine here.
        with client, contextlib.suppress(OSError):
            pending = b""
            while self.script:
                while b"\r\n\r\n" not in pending:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                head, _, rest = pending.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += client.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                pending = rest[length:]
                answer, close = self.script.pop(0)
                client.sendall(answer)
                if close:
                    return


Serve = Callable[..., Scripted]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[Scripted] = []

    def start(*script: tuple[bytes, bool]) -> Scripted:
        server = Scripted(*script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _put(conn: KeptAliveConnection, url: str, body: bytes = b'{"n": 1}') -> requests.Response:
    return conn.request("PUT", f"{url}/api/v2/tickets/7.json", {"X-Test": "1"}, body)


def test_the_request_is_one_well_formed_http11_message(serve: Serve) -> None:
    server = serve((OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    response = _put(conn, server.url)
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.reason == "OK"
    assert response.headers["content-type"] == "application/json"
    (request,) = server.requests
    port = server.url.rpartition(":")[2]
    assert request == (
        b"PUT /api/v2/tickets/7.json HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + port.encode() + b"\r\n"
        b"Accept-Encoding: identity\r\n"
        b"X-Test: 1\r\n"
        b"Content-Length: 8\r\n\r\n"
        b'{"n": 1}'
    )


def test_a_chunked_answer_is_joined_and_the_connection_kept(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"ok"\r\n7\r\n: true}\r\n0\r\n\r\n'
    )
    server = serve((chunked, False), (OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    assert _put(conn, server.url).json() == {"ok": True}
    assert _put(conn, server.url).json() == {"ok": True}
    assert server.connections == 1


def test_interim_answers_are_skipped(serve: Serve) -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    server = serve((interim + OK, False))
    response = _put(KeptAliveConnection(server.url, (2, 2)), server.url)
    assert response.status_code == 200 and "Link" not in response.headers


def test_a_body_that_ends_when_the_server_closes(serve: Serve) -> None:
    until_close = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok": true}'
    server = serve((until_close, True), (OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    assert _put(conn, server.url).json() == {"ok": True}
    assert _put(conn, server.url).status_code == 200
    assert server.connections == 2


def test_connection_close_is_honoured(serve: Serve) -> None:
    closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    server = serve((closing, False), (OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    assert _put(conn, server.url).status_code == 200
    # Not written to the connection the server announced it would close.
    assert _put(conn, server.url).status_code == 200
    assert server.connections == 2


def test_repeated_headers_are_joined(serve: Serve) -> None:
    """Whatever the case of their names; the first spelling is kept, lookups ignore case."""
    cookies = OK.replace(
        b"Content-Length",
        b"Set-Cookie: a=1\r\nX-Trace: t\r\nset-cookie: b=2\r\nSET-COOKIE: c=3\r\nContent-Length",
    )
    server = serve((cookies, False))
    response = _put(KeptAliveConnection(server.url, (2, 2)), server.url)
    headers = response.headers
    assert headers["set-cookie"] == "a=1, b=2, c=3"
    assert list(headers) == ["Content-Type", "Set-Cookie", "X-Trace", "Content-Length"]
    # Still requests' CaseInsensitiveDict in every way the integrations and requests use it.
    assert isinstance(headers, CaseInsensitiveDict) and len(headers) == 4
    assert "x-TRACE" in headers and headers.get("Retry-After") is None
    assert headers == {
        "content-type": "application/json",
        "set-cookie": "a=1, b=2, c=3",
        "x-trace": "t",
        "content-length": "12",
    }
    assert headers.copy() == headers and dict(headers.lower_items())["x-trace"] == "t"
    assert response.encoding == "utf-8" and response.json() == {"ok": True}


def test_data_after_the_answer_keeps_the_answer_but_not_the_connection(
    serve: Serve,
) -> None:
    server = serve((OK + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False), (OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    assert _put(conn, server.url).json() == {"ok": True}
    assert _put(conn, server.url).json() == {"ok": True}
    assert server.connections == 2


BROKEN = {
    "cut short": (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok"', True),
    "closed without a word": (b"", True),
    "not http": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", True),
    "two lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", True),
    "headers without end": (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 300_000, False),
}


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_answer_to_a_write_is_maybe_applied(
    serve: Serve, answer: tuple[bytes, bool]
) -> None:
    server = serve(answer, (OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    with pytest.raises(requests.ConnectionError) as raised:
        _put(conn, server.url)
    failure = transport_failure("Zendesk", "add a note", raised.value, is_write=True)
    assert failure.maybe_applied and not failure.never_sent
    assert "dropped the connection" in failure.reason
    # Never resent, and the broken connection is not used again.
    assert len(server.requests) == 1
    assert _put(conn, server.url).status_code == 200
    assert server.connections == 2


def test_an_answer_larger_than_the_limit_is_refused(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "MAX_BODY_BYTES", 10)
    server = serve((OK, False))
    with pytest.raises(requests.ConnectionError, match="exceeds 10 bytes"):
        _put(KeptAliveConnection(server.url, (2, 2)), server.url)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /y", {}),
        ("/tickets/ 7", {}),
        ("/x", {"X-Test": "1\r\nX-Injected: 1"}),
        ("/x", {"Bad Name": "1"}),
    ],
    ids=["line break in the URL", "space in the URL", "line break in a value", "space in a name"],
)
def test_what_would_break_the_request_is_refused_before_sending(
    serve: Serve, path: str, headers: dict[str, str]
) -> None:
    server = serve((OK, False))
    conn = KeptAliveConnection(server.url, (2, 2))
    with pytest.raises(ValueError, match=r"not allowed|spaces, control"):
        conn.request("PUT", server.url + path, headers, b"{}")
    assert server.requests == [] and server.connections == 0
