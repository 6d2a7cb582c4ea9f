"""The embedded Redis with real processes and a real redis-server: no mocks.

Every test gets its own short data directory under /tmp (unix socket paths are limited to 107
bytes) and leaves no process and no directory behind, even when it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import psutil
import pytest
import redis

from worker.embedded_redis import KEEPER_POLL_INTERVAL, EmbeddedRedis, EmbeddedRedisError

TIMEOUT = 15.0  # upper bound for anything we poll for; normally a fraction of a second

# To check that something does NOT happen: long enough for the keeper to look a few times.
KEEPER_POLLS = 3 * KEEPER_POLL_INTERVAL

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


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def is_running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """redis-server processes serving data_dir (redis chdirs into its `dir`)."""
    found = []
    for proc in psutil.process_iter(["name", "cwd", "status"]):
        info = proc.info
        if (
            info["name"] == "redis-server"
            and info["cwd"] == str(data_dir)
            and info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def keeper_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if (
            cmdline[1:] == ["-m", "worker.embedded_redis", "keeper", str(data_dir)]
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(proc)
    return found


def server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def keeper_pid(data_dir: Path) -> int:
    return int((data_dir / "keeper.pid").read_text())


def assert_stops(data_dir: Path, *pids: int) -> None:
    """No keeper, no redis-server for data_dir remains; the runtime files are cleaned up."""
    wait_for(lambda: not any(is_running(pid) for pid in pids), f"processes {pids} to exit")
    wait_for(lambda: not server_processes(data_dir), "redis-server to exit")
    wait_for(lambda: not keeper_processes(data_dir), "the keeper to exit")
    for name in ("redis.sock", "redis.pid", "keeper.pid"):
        assert not (data_dir / name).exists(), name


def assert_serving(data_dir: Path, url: str, pid: int) -> None:
    assert server_pid(url) == pid
    assert [p.pid for p in server_processes(data_dir)] == [pid]
    assert len(keeper_processes(data_dir)) == 1


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ra-")).resolve()
    try:
        yield path
    finally:
        # A failed test may leave a keeper behind: give it a moment to stop on its own, then
        # kill what is left (redis-server too), so no test leaks a process or a directory.
        deadline = time.monotonic() + 3
        while (keeper_processes(path) or server_processes(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = keeper_processes(path) + server_processes(path)
        for proc in leftovers:
            proc.kill()
        psutil.wait_procs(leftovers, timeout=5)
        shutil.rmtree(path, ignore_errors=True)
        assert not leftovers, f"processes left running: {leftovers}"


@pytest.fixture
def users() -> Iterator[list[EmbeddedRedis]]:
    """In-process users to release at the end, even if the test fails half-way."""
    created: list[EmbeddedRedis] = []
    yield created
    for user in created:
        user.release()


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
    assert (data_dir / "appendonly.aof").stat().st_size > 0

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


def test_socket_path_too_long_is_a_clear_error(data_dir: Path) -> None:
    too_deep = data_dir / ("x" * 100)
    with pytest.raises(EmbeddedRedisError, match="choose a shorter data directory") as excinfo:
        EmbeddedRedis(too_deep).acquire()
    assert str(too_deep / "redis.sock") in str(excinfo.value)
    assert not too_deep.exists()


def test_server_failing_to_start_reports_its_log(data_dir: Path) -> None:
    # A corrupt append-only file: redis-server refuses to start, which the user must hear
    # about with the reason, and no keeper may linger.
    (data_dir / "appendonly.aof").write_bytes(b"*not an aof\r\n")
    with pytest.raises(EmbeddedRedisError, match="failed to start") as excinfo:
        EmbeddedRedis(data_dir).acquire()
    assert "redis-server exited with code" in str(excinfo.value)
    assert "append only file" in str(excinfo.value).lower()
    assert_stops(data_dir)


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
