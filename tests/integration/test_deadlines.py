"""integrations.deadlines: a request's overall deadline, against a server dripping its answer."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from integrations.errors import transport_failure
from integrations.http import JsonApi
from tests.raw_server import RawServer


class DrippingServer(RawServer):
    """Answers every request correctly, one byte every ``pause`` seconds: never idle long
    enough for a read timeout, never done in time."""

    ANSWER = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
        b'{"ok": true, "padding": "..............."}'
    )

    def __init__(self, pause: float) -> None:
        super().__init__()
        self.pause = pause
        self.requests = 0

    def handle(self, client: socket.socket) -> None:
        with client:
            client.recv(65536)
            self.requests += 1
            for byte in self.ANSWER:
                try:
                    client.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up
                time.sleep(self.pause)


def test_an_answer_dripped_slower_than_the_deadline_fails_as_a_read_timeout() -> None:
    """The read timeout (1 s) bounds each wait for data; the request as a whole gets the
    connect and read timeouts together (1.5 s), however the server drips its answer."""
    server = DrippingServer(pause=0.2)  # the whole answer would take about 25 s
    api = JsonApi(server.url, (0.5, 1.0), system="Test")
    started = time.monotonic()
    try:
        with pytest.raises(requests.ReadTimeout, match=r"no complete answer within 1\.5 s"):
            api.send("PUT", server.url + "/tickets/1.json", {"ticket": {}})
        took = time.monotonic() - started
        assert 1.4 <= took < 5
        assert server.requests == 1
        failure = transport_failure("Zendesk", "add a note", requests.ReadTimeout(), is_write=True)
        assert failure.maybe_applied and "read timeout" in failure.reason
        # The connection it was on is not used again: the next request gets a new one.
        with pytest.raises(requests.ReadTimeout):
            api.send("GET", server.url + "/tickets/1.json")
        assert server.connections == 2
    finally:
        server.close()
