"""The base `Double` over real HTTP: lifecycle, keep-alive, routing, recording and latency."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.sandbox.helpers import EchoDouble


def test_start_stop_restart_and_context_manager() -> None:
    double = EchoDouble()
    with pytest.raises(RuntimeError):
        _ = double.url
    url = double.start()
    assert url == double.url and url.startswith("http://127.0.0.1:")
    assert double.start() == url  # idempotent
    assert requests.get(f"{url}/things/1", timeout=2).json()["id"] == "1"
    double.stop()
    double.stop()  # idempotent
    assert not double.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/things/1", timeout=2)
    # Restarting keeps the port, so configured clients reach it again (an outage, then recovery).
    assert double.start() == url
    assert requests.get(f"{url}/things/2", timeout=2).status_code == 200
    double.stop()
    with EchoDouble() as other:
        assert other.running
    assert not other.running


def test_keep_alive_connections_are_reused_and_closed_by_stop(echo: EchoDouble) -> None:
    session = requests.Session()
    for _ in range(3):
        assert session.post(f"{echo.url}/things", timeout=2).status_code == 201
    ports = {r.client_port for r in echo.requests}
    assert len(ports) == 1, "a requests.Session must reuse one HTTP/1.1 connection"
    assert echo.applied == 3
    echo.stop()
    # The pooled connection was shut down too: no handler thread keeps serving it.
    with pytest.raises(requests.ConnectionError):
        session.post(f"{echo.url}/things", timeout=2)
    assert echo.applied == 3


def test_recording_routing_and_query(echo: EchoDouble) -> None:
    requests.get(f"{echo.url}/things/7?a=1&b=two", headers={"X-Trace": "abc"}, timeout=2)
    requests.post(f"{echo.url}/things", json={"k": "v"}, timeout=2)
    missing = requests.get(f"{echo.url}/nope", timeout=2)
    wrong_method = requests.delete(f"{echo.url}/things", timeout=2)
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert [r.method for r in echo.requests] == ["GET", "POST", "GET", "DELETE"]
    get = echo.calls("GET", r"^/things/\d+$")[0]
    assert get.query == {"a": "1", "b": "two"}
    assert get.headers["x-trace"] == "abc" and get.headers["X-TRACE"] == "abc"
    assert get.status == 200 and get.fault is None and get.time <= time.time()
    post = echo.calls(method="post")[0]
    assert post.json == {"k": "v"} and post.body == b'{"k": "v"}'
    assert len(echo.calls(path_regex="things")) == 3
    echo.reset_requests()
    assert echo.requests == [] and echo.calls() == []
    assert echo.handler_errors == []


def test_latency_is_applied_and_changeable_at_runtime(echo: EchoDouble) -> None:
    echo.latency = 0.25
    started = time.monotonic()
    requests.get(f"{echo.url}/things/1", timeout=2)
    assert time.monotonic() - started >= 0.25
    echo.latency = 0.0
    started = time.monotonic()
    requests.get(f"{echo.url}/things/1", timeout=2)
    assert time.monotonic() - started < 0.2
