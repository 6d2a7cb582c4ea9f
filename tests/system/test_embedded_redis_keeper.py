"""The embedded Redis's keeper under failures, with real processes and a real redis-server.

A killed keeper, a left-over server and a server that cannot start: the next user gets a
working server (or a clear error), never two servers on one data directory.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import redis

from tests.test_embedded_redis_support import (
    assert_serving,
    assert_stops,
    is_running,
    keeper_pid,
    server_pid,
    wait_for,
)
from worker.embedded_redis import EmbeddedRedis, EmbeddedRedisError

pytest_plugins = ["tests.test_embedded_redis_support"]


def test_sigkilled_keeper_takes_the_server_down_and_acquire_recovers(
    data_dir: Path, users: list[EmbeddedRedis]
) -> None:
    user = EmbeddedRedis(data_dir)
    users.append(user)
    url = user.acquire()
    with redis.Redis.from_url(url) as client:
        client.set("kept", "yes")
    pid = server_pid(url)

    os.kill(keeper_pid(data_dir), signal.SIGKILL)
    # PR_SET_PDEATHSIG: the server gets SIGTERM and exits gracefully, flushing its AOF.
    wait_for(lambda: not is_running(pid), "redis-server to exit after its keeper")

    other = EmbeddedRedis(data_dir)
    users.append(other)
    assert other.acquire() == url
    new_pid = server_pid(url)
    assert new_pid != pid
    with redis.Redis.from_url(url) as client:
        assert client.get("kept") == b"yes"  # flushed by the SIGTERM shutdown
    assert user.acquire() == url  # the first user, still registered, sees the new server
    assert_serving(data_dir, url, new_pid)

    user.release()
    other.release()
    assert_stops(data_dir, new_pid)


def test_new_keeper_waits_for_a_left_over_server_before_starting_its_own(
    data_dir: Path, users: list[EmbeddedRedis]
) -> None:
    # Two servers must never append to one AOF. Freeze the server, kill its keeper: the
    # pdeathsig SIGTERM stays pending, so the old server outlives its keeper (as it would
    # where pdeathsig does not exist). A new keeper must wait for it to exit.
    user = EmbeddedRedis(data_dir)
    users.append(user)
    url = user.acquire()
    with redis.Redis.from_url(url) as client:
        client.set("kept", "yes")
    pid = server_pid(url)
    keeper = keeper_pid(data_dir)
    os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(keeper, signal.SIGKILL)
        wait_for(lambda: not is_running(keeper), "the keeper to die")

        def thaw_once_the_new_keeper_waits() -> None:
            try:
                wait_for(
                    lambda: "still running" in (data_dir / "keeper.log").read_text(),
                    "the new keeper to notice the old server",
                )
            finally:
                os.kill(pid, signal.SIGCONT)

        thawer = threading.Thread(target=thaw_once_the_new_keeper_waits)
        thawer.start()
        other = EmbeddedRedis(data_dir)
        users.append(other)
        assert other.acquire() == url
        thawer.join()
    finally:
        if is_running(pid):
            os.kill(pid, signal.SIGCONT)
    assert "still running" in (data_dir / "keeper.log").read_text()  # the path was taken
    assert not is_running(pid)
    new_pid = server_pid(url)
    assert new_pid != pid
    with redis.Redis.from_url(url) as client:
        assert client.get("kept") == b"yes"
    user.release()
    other.release()
    assert_stops(data_dir, new_pid)


def test_server_failing_to_start_reports_its_log(data_dir: Path) -> None:
    # A corrupt append-only file: redis-server refuses to start, which the user must hear
    # about with the reason, and no keeper may linger.
    (data_dir / "appendonly.aof").write_bytes(b"*not an aof\r\n")
    with pytest.raises(EmbeddedRedisError, match="failed to start") as excinfo:
        EmbeddedRedis(data_dir).acquire()
    assert "redis-server exited with code" in str(excinfo.value)
    assert "append only file" in str(excinfo.value).lower()
    assert_stops(data_dir)
