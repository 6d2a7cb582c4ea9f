"""Fault injection on the base `Double`: scripted and random faults, and the rate limit."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from sandbox.doubles import FAULT_KINDS
from tests.integration.sandbox.helpers import EchoDouble


def test_reset_fault_raises_connection_error_and_is_not_applied(echo: EchoDouble) -> None:
    echo.fail_next("reset")
    with pytest.raises(requests.ConnectionError) as raised:
        requests.post(f"{echo.url}/things", timeout=2)
    assert "Connection reset by peer" in str(raised.value), "a TCP RST, not a clean close"
    assert echo.applied == 0
    [record] = echo.requests
    assert record.fault == "reset" and record.status is None
    # Only the next request was affected.
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201


def test_lost_response_applies_the_write_then_resets(echo: EchoDouble) -> None:
    echo.fail_next("lost_response")
    with pytest.raises(requests.ConnectionError) as raised:
        requests.post(f"{echo.url}/things", timeout=2)
    assert "Connection reset by peer" in str(raised.value)
    assert echo.applied == 1, "the server applied it although the client saw an error"
    assert echo.requests[0].fault == "lost_response"


def test_slow_fault_times_the_client_out_after_applying(echo: EchoDouble) -> None:
    echo.slow_seconds = 0.6
    echo.fail_next("slow")
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{echo.url}/things", timeout=(2, 0.2))
    assert time.monotonic() - started < 0.55
    assert echo.applied == 1
    # A patient client gets the normal answer, late.
    echo.fail_next("slow")
    started = time.monotonic()
    response = requests.post(f"{echo.url}/things", timeout=3)
    assert response.status_code == 201 and response.json() == {"applied": 2}
    assert time.monotonic() - started >= 0.6


def test_5xx_429_and_500_are_not_applied(echo: EchoDouble) -> None:
    for kind, status in (("5xx", 503), ("429", 429), ("500", 500)):
        echo.fail_next(kind)
        assert requests.post(f"{echo.url}/things", timeout=2).status_code == status
    assert echo.applied == 0
    assert [r.fault for r in echo.requests] == ["5xx", "429", "500"]


def test_fail_next_count_and_filters(echo: EchoDouble) -> None:
    echo.fail_next("5xx", count=2, method="POST", path_regex=r"^/things$")
    assert requests.get(f"{echo.url}/things/1", timeout=2).status_code == 200  # not matching
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 503
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 503
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201
    with pytest.raises(ValueError):
        echo.fail_next("teapot")


def test_random_faults_are_seedable_and_scripted_ones_win(echo: EchoDouble) -> None:
    def run() -> list[int]:
        echo.seed(42)
        return [requests.post(f"{echo.url}/things", timeout=2).status_code for _ in range(30)]

    echo.fault_rate = 0.5
    echo.fault_kinds = ["5xx", "429"]
    first, second = run(), run()
    assert first == second, "same seed, same request order: same faults"
    assert set(first) == {201, 503, 429}
    assert 5 <= first.count(201) <= 25
    echo.fault_rate = 1.0
    echo.fault_kinds = ["500"]
    echo.fail_next("429")
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 429
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 500
    echo.clear_faults()
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201
    with pytest.raises(ValueError):
        echo.fault_rate = 1.5
    assert set(FAULT_KINDS) == {"5xx", "429", "reset", "lost_response", "slow", "500", "redirect"}


def test_the_redirect_fault_points_at_the_same_path_on_https(echo: EchoDouble) -> None:
    echo.fail_next("redirect", method="POST")
    response = requests.post(f"{echo.url}/things", timeout=2, allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{echo.port}/things"
    assert echo.applied == 0
    # The redirected request was not applied: the next one is the first to be.
    assert requests.post(f"{echo.url}/things", timeout=2).json() == {"applied": 1}


def test_random_faults_are_thread_safe_under_concurrency(echo: EchoDouble) -> None:
    echo.fault_rate = 0.3
    echo.fault_kinds = ["5xx", "reset"]
    echo.seed(7)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        session = requests.Session()
        for _ in range(20):
            try:
                outcome = str(session.post(f"{echo.url}/things", timeout=5).status_code)
            except requests.ConnectionError:
                outcome = "reset"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == len(echo.requests) == 160
    assert outcomes.count("201") == echo.applied
    assert {r.fault for r in echo.requests} == {None, "5xx", "reset"}
    assert echo.handler_errors == []


def test_rate_limit_sliding_window(echo: EchoDouble) -> None:
    echo.rate_limit_per_minute = 3
    statuses = [requests.post(f"{echo.url}/things", timeout=2).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert echo.throttled_count == 2
    assert [r.fault for r in echo.requests][-2:] == ["rate_limited", "rate_limited"]
    echo.rate_limit_per_minute = None
    assert requests.post(f"{echo.url}/things", timeout=2).status_code == 201
