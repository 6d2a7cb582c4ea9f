"""The embedded Redis's lifetime, with real processes and a real redis-server: no mocks.

Users in this process, in other processes and in forked children share one server, which stops
once the last of them is gone, however it goes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import redis

from tests.test_embedded_redis_support import (
    KEEPER_POLLS,
    TIMEOUT,
    assert_serving,
    assert_stops,
    keeper_pid,
    server_pid,
)
from worker.embedded_redis import EmbeddedRedis, EmbeddedRedisError

pytest_plugins = ["tests.test_embedded_redis_support"]

# A user in another process: registers through the process-wide helper, reports the server's
# pid, then waits until its stdin closes (or a signal arrives). With "fork", a forked child
# does the same, like a dramatiq worker process.
USER_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import redis
    from worker.embedded_redis import embedded_redis_url

    # Ctrl-C's default behaviour, whatever this process inherited: a shell starts
    # background jobs with SIGINT ignored, and a parent may have it blocked.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    url = embedded_redis_url(Path(sys.argv[1]))
    assert embedded_redis_url(Path(sys.argv[1])) == url  # acquired once per process
    client = redis.Redis.from_url(url)
    client.incr("users")
    server_pid = client.info("server")["process_id"]
    client.close()
    # One write() per line: parent and child share the pipe, and print() may split a line.
    if "fork" in sys.argv[2:] and os.fork() == 0:
        os.write(1, f"child {os.getpid()}\\n".encode())
    else:
        os.write(1, f"{server_pid}\\n".encode())
    sys.stdin.read()
    """
)


class UserProcess:
    """A user in a separate Python process running USER_SCRIPT."""

    def __init__(self, data_dir: Path, *flags: str, new_session: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", USER_SCRIPT, str(data_dir), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # KeyboardInterrupt tracebacks in the SIGINT test
            text=True,
            start_new_session=new_session,
        )

    @property
    def stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def read_line(self) -> str:
        line = self.stdout.readline().strip()
        assert line, f"user process exited early with {self.proc.wait(TIMEOUT)}"
        return line

    def finish(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def user_processes() -> Iterator[Callable[..., UserProcess]]:
    started: list[UserProcess] = []

    def start(data_dir: Path, *flags: str, new_session: bool = False) -> UserProcess:
        user = UserProcess(data_dir, *flags, new_session=new_session)
        started.append(user)
        return user

    yield start
    for user in started:
        user.kill()


def test_acquire_gives_a_working_private_url(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as user:
        assert user.url == f"unix://{data_dir}/redis.sock"
        client = redis.Redis.from_url(user.url)
        assert client.set("replay", "attached")
        assert client.get("replay") == b"attached"
        pid = int(client.info("server")["process_id"])
        client.close()
        assert (data_dir / "redis.sock").stat().st_mode & 0o777 == 0o700
        assert data_dir.stat().st_mode & 0o777 == 0o700
        keeper = keeper_pid(data_dir)
    assert_stops(data_dir, pid, keeper)


def test_release_is_idempotent_and_acquire_can_be_repeated(data_dir: Path) -> None:
    user = EmbeddedRedis(data_dir)
    url = user.acquire()
    pid = server_pid(url)
    assert user.acquire() == url  # already registered: just checks the server
    assert server_pid(url) == pid
    user.release()
    user.release()
    assert_stops(data_dir, pid)


def test_data_survives_a_full_stop_and_start(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as user:
        client = redis.Redis.from_url(user.url)
        client.set("ticket:42", "session-abc")
        first_pid = int(client.info("server")["process_id"])
        client.close()
    assert_stops(data_dir, first_pid)
    # Redis 6 keeps appendonly.aof, Redis 7 the files of an appendonlydir.
    assert (
        sum(p.stat().st_size for p in data_dir.glob("appendonly*") if p.is_file())
        + sum(p.stat().st_size for p in data_dir.glob("appendonlydir/*"))
        > 0
    )

    with EmbeddedRedis(data_dir) as user:
        client = redis.Redis.from_url(user.url)
        assert client.get("ticket:42") == b"session-abc"
        second_pid = int(client.info("server")["process_id"])
        client.close()
    assert second_pid != first_pid
    assert_stops(data_dir, second_pid)


def test_processes_starting_together_share_one_server(
    data_dir: Path, user_processes: Callable[..., UserProcess]
) -> None:
    # Started at once, so they race for start.lock: exactly one may start a server.
    users = [user_processes(data_dir) for _ in range(3)]
    pids = {int(user.read_line()) for user in users}
    assert len(pids) == 1
    (pid,) = pids
    url = f"unix://{data_dir}/redis.sock"
    assert_serving(data_dir, url, pid)
    client = redis.Redis.from_url(url)
    assert client.get("users") == b"3"
    client.close()

    for user in users[:-1]:
        assert user.finish() == 0
    assert_serving(data_dir, url, pid)  # one user left
    assert users[-1].finish() == 0
    assert_stops(data_dir, pid)


def test_server_outlives_a_sigkilled_user_until_the_others_release(
    data_dir: Path, users: list[EmbeddedRedis], user_processes: Callable[..., UserProcess]
) -> None:
    victim = user_processes(data_dir)
    pid = int(victim.read_line())
    survivor = EmbeddedRedis(data_dir)
    users.append(survivor)
    url = survivor.acquire()

    victim.kill()  # SIGKILL: no atexit, no release; the kernel drops its lock
    time.sleep(KEEPER_POLLS)  # the keeper must not stop the server under the survivor
    assert_serving(data_dir, url, pid)

    survivor.release()
    assert_stops(data_dir, pid)


def signal_state(pid: int) -> str:
    """What the kernel says of a process's state and signals (for a failure message)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as exc:
        return f"{pid}: {exc}"
    wanted = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    fields = [line for line in status if line.split(":")[0] in wanted]
    return f"{pid}: {'; '.join(fields)}; wchan {wchan}"


def test_sigint_to_the_process_group_stops_cleanly(
    data_dir: Path, user_processes: Callable[..., UserProcess]
) -> None:
    # Like Ctrl-C on a dramatiq CLI: the main process and its forked worker get SIGINT; the
    # keeper, in its own session, does not, and shuts down because the users are gone.
    user = user_processes(data_dir, "fork", new_session=True)
    lines = {user.read_line(), user.read_line()}
    (child_line,) = [line for line in lines if line.startswith("child")]
    (pid_line,) = lines - {child_line}
    pid, child = int(pid_line), int(child_line.split()[1])
    keeper = keeper_pid(data_dir)

    os.killpg(user.proc.pid, signal.SIGINT)
    try:
        user.proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the user process ignored SIGINT: {signal_state(user.proc.pid)}; "
            f"its child: {signal_state(child)}"
        ) from None
    assert_stops(data_dir, pid, child, keeper)
    keeper_log = (data_dir / "keeper.log").read_text()
    assert "no users left" in keeper_log
    assert "terminated by a signal" not in keeper_log
    assert "User requested shutdown" in (data_dir / "redis.log").read_text()


def test_socket_path_too_long_is_a_clear_error(data_dir: Path) -> None:
    too_deep = data_dir / ("x" * 100)
    with pytest.raises(EmbeddedRedisError, match="choose a shorter data directory") as excinfo:
        EmbeddedRedis(too_deep).acquire()
    assert str(too_deep / "redis.sock") in str(excinfo.value)
    assert not too_deep.exists()


def test_forked_child_keeps_the_server_alive_after_the_parent_releases(data_dir: Path) -> None:
    user = EmbeddedRedis(data_dir)
    url = user.acquire()
    pid = server_pid(url)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # holds the inherited shared lock until the parent closes the pipe
        os.close(write_fd)
        os.read(read_fd, 1)
        os._exit(0)
    os.close(read_fd)
    try:
        user.release()  # must not drop the child's lock (close(), not LOCK_UN)
        time.sleep(KEEPER_POLLS)
        assert_serving(data_dir, url, pid)
    finally:
        os.close(write_fd)
        os.waitpid(child, 0)
    assert_stops(data_dir, pid)
