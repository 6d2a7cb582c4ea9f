"""The users of an embedded Redis: processes that start the server if needed and keep it alive.

``EmbeddedRedis`` registers one user (a shared lock on ``users.lock``) and spawns a keeper when
no live one serves the data directory; ``embedded_redis_url`` does so once per process, and
``temporary_embedded_redis`` in a throwaway directory.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from worker.embedded_redis.files import (
    _KEEPER_MODULE,
    KEEPER_START_TIMEOUT,
    SERVER_START_TIMEOUT,
    SERVER_STOP_TIMEOUT,
    START_LOCK_TIMEOUT,
    USERS_LOCK_TIMEOUT,
    WAIT_POLL_INTERVAL,
    EmbeddedRedisError,
    _check_socket_path,
    _flock_with_timeout,
    _lock_is_held,
    _log_tail,
    _normalise,
    _open_lock,
    _Paths,
    _ping,
    _read_pid,
    _redis_server_binary,
    check_private,
)

# The package's logger: its modules make one component.
logger = logging.getLogger(__package__)


# One lock for the registry and for acquire/release of every instance: acquire is rare and
# serialising it keeps the state simple. fork() waits for it, so a child never inherits
# start.lock from an acquire() running in another thread (it would hold it for its whole
# life and block every other process); the child gets a fresh one.
_state_lock = threading.RLock()
_registry: dict[Path, EmbeddedRedis] = {}


def _before_fork() -> None:
    _state_lock.acquire()


def _after_fork_in_parent() -> None:
    _state_lock.release()


def _after_fork_in_child() -> None:
    global _state_lock
    _state_lock = threading.RLock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class EmbeddedRedis:
    """A user of the embedded Redis server in ``data_dir``.

    ``acquire()`` starts the server if needed and registers this process as a user;
    ``release()`` unregisters it. The server stops once no process (nor any forked child of
    one) is registered. Also a context manager.
    """

    def __init__(self, data_dir: Path) -> None:
        #: As configured, before symbolic links are resolved: checked as such.
        self._given = Path(os.path.abspath(Path(data_dir).expanduser()))
        self.data_dir = _normalise(data_dir)
        self._paths = _Paths(self.data_dir)
        self._users_fd: int | None = None

    def __repr__(self) -> str:
        state = "acquired" if self._users_fd is not None else "released"
        return f"<EmbeddedRedis {str(self.data_dir)!r} {state}>"

    @property
    def socket_path(self) -> Path:
        return self._paths.socket

    @property
    def url(self) -> str:
        """``unix:///abs/path/redis.sock``; the server only answers while someone acquired it."""
        return "unix://" + urllib.parse.quote(str(self._paths.socket))

    def acquire(self) -> str:
        """Ensure the server runs, register this process as a user, and return the URL.

        Calling it again while acquired does not register twice but checks the server again
        and restarts it if it died (say, its keeper was killed).
        """
        with _state_lock:
            _check_socket_path(self._paths.socket)
            self._make_data_dir()
            newly_registered = self._users_fd is None
            if newly_registered:
                fd = _open_lock(self._paths.users_lock)
                try:
                    # Taken BEFORE deciding to start anything: a keeper can only shut down once
                    # it locks users.lock exclusively, so the server we are about to find or
                    # start cannot be stopped under us. If a keeper is shutting down right now
                    # (it holds the lock exclusively), we wait here until it is done.
                    _flock_with_timeout(
                        fd,
                        fcntl.LOCK_SH,
                        USERS_LOCK_TIMEOUT,
                        f"the previous embedded Redis in {self.data_dir} to shut down",
                    )
                except BaseException:
                    os.close(fd)
                    raise
                self._users_fd = fd
            try:
                self._ensure_server()
            except BaseException:
                if newly_registered:
                    self.release()
                raise
            logger.debug("using embedded Redis at %s", self.url)
            return self.url

    def release(self) -> None:
        """Unregister this process; idempotent. The server stops once no user is left."""
        with _state_lock:
            fd, self._users_fd = self._users_fd, None
            if fd is not None:
                # close(), never flock(LOCK_UN): the lock belongs to the open file description,
                # which forked children share; LOCK_UN would drop it for them too, while
                # close() only drops our reference and the children keep the server alive.
                os.close(fd)

    def __enter__(self) -> EmbeddedRedis:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _make_data_dir(self) -> None:
        check_private(self._given)
        if not self.data_dir.is_dir():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; the server's files are private.
            os.chmod(self.data_dir, 0o700)

    def _ensure_server(self) -> None:
        paths = self._paths
        start_fd = _open_lock(paths.start_lock)
        try:
            _flock_with_timeout(
                start_fd,
                fcntl.LOCK_EX,
                START_LOCK_TIMEOUT,
                f"another process to start the embedded Redis in {self.data_dir}",
            )
            if self._wait_for_running_keeper():
                return
            self._spawn_keeper()
            # The keeper checked PING before reporting ready; check from here too, so a
            # socket we cannot use (permissions, path) is reported now rather than by dramatiq.
            if not self._wait_for_ping(SERVER_START_TIMEOUT):
                raise EmbeddedRedisError(
                    f"the embedded Redis keeper reported ready but {paths.socket} does not "
                    f"answer PING; last lines of {paths.redis_log}:\n{_log_tail(paths.redis_log)}"
                )
        finally:
            os.close(start_fd)

    def _wait_for_running_keeper(self) -> bool:
        """True if a keeper is alive and its server answers; False if there is no keeper.

        A live keeper whose server does not answer yet is one that is still starting (its
        spawner died before it was ready) or stopping after a signal: wait for either outcome.
        A server answering without a keeper (the keeper was killed and pdeathsig is not
        available, or the server is still flushing) must not be used: nobody would stop it.
        """
        paths = self._paths
        deadline = time.monotonic() + KEEPER_START_TIMEOUT
        while _lock_is_held(paths.keeper_lock):
            if _ping(paths.socket):
                return True
            if time.monotonic() >= deadline:
                raise EmbeddedRedisError(
                    f"the embedded Redis keeper (pid {_read_pid(paths.keeper_pid)}) in "
                    f"{self.data_dir} is running but {paths.socket} has not answered for "
                    f"{KEEPER_START_TIMEOUT:.0f} s; see {paths.keeper_log} and "
                    f"{paths.redis_log}:\n{_log_tail(paths.redis_log)}"
                )
            time.sleep(WAIT_POLL_INTERVAL)
        return False

    def _spawn_keeper(self) -> None:
        _redis_server_binary()  # fail here, with a clear message, if it is missing
        env = dict(os.environ)
        # Run exactly this copy of the package, even from a checkout that is not installed.
        # This file is <root>/worker/embedded_redis/users.py, so <root> is parents[2].
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", _KEEPER_MODULE, "keeper", str(self.data_dir)]
        logger.info("starting the embedded Redis in %s", self.data_dir)
        # The launcher forks the real keeper and exits once the server answers: the keeper is
        # then nobody's child (no zombie in a long-lived user), and its failure reaches us on
        # stderr. start_new_session: a Ctrl-C sent to the user's process group misses it.
        # close_fds: it must not inherit our shared lock, or it could never lock exclusively.
        launcher = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=env,
        )
        try:
            _, stderr = launcher.communicate(timeout=KEEPER_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.communicate()
            raise EmbeddedRedisError(
                f"the embedded Redis in {self.data_dir} did not start within "
                f"{KEEPER_START_TIMEOUT:.0f} s; see {self._paths.keeper_log}; last lines of "
                f"{self._paths.redis_log}:\n{_log_tail(self._paths.redis_log)}"
            ) from None
        if launcher.returncode != 0:
            detail = stderr.decode("utf-8", "replace").strip() or "(no message)"
            raise EmbeddedRedisError(
                f"the embedded Redis in {self.data_dir} failed to start: {detail}"
            )

    def _wait_for_ping(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not _ping(self._paths.socket):
            if time.monotonic() >= deadline:
                return False
            time.sleep(WAIT_POLL_INTERVAL)
        return True


def embedded_redis_url(data_dir: Path) -> str:
    """The URL of the embedded Redis in ``data_dir``, acquired once per process.

    The process stays registered until it exits (an ``atexit`` handler releases it; if it dies
    without running it, the kernel drops its lock anyway). Forked children share the
    registration.
    """
    key = _normalise(data_dir)
    with _state_lock:
        user = _registry.get(key)
        if user is None:
            user = EmbeddedRedis(data_dir)
            user.acquire()
            _registry[key] = user
            atexit.register(user.release)
        return user.url


@contextmanager
def temporary_embedded_redis(prefix: str = "ra-") -> Iterator[str]:
    """An embedded Redis in a fresh temporary directory, gone with the block.

    For the demo, the tests and the benchmark: yields the URL; afterwards waits
    for the keeper to stop the server and removes the directory.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    user = EmbeddedRedis(data_dir)
    try:
        yield user.acquire()
    finally:
        user.release()
        deadline = time.monotonic() + SERVER_STOP_TIMEOUT
        while user.socket_path.exists() and time.monotonic() < deadline:
            time.sleep(WAIT_POLL_INTERVAL)
        shutil.rmtree(data_dir, ignore_errors=True)
