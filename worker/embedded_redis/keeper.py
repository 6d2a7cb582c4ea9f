"""The keeper process: starts redis-server, then stops it once no user is left.

Spawned by a user as ``python -m worker.embedded_redis.keeper keeper DATA_DIR``; the process
run that way is a launcher, which forks the real keeper and exits with its start-up outcome.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from worker.embedded_redis.files import (
    _KEEPER_MODULE,
    KEEPER_LOCK_TIMEOUT,
    KEEPER_POLL_INTERVAL,
    O_NOFOLLOW,
    EmbeddedRedisError,
    _flock_with_timeout,
    _log_tail,
    _normalise,
    _open_lock,
    _Paths,
    _read_pid,
    _try_flock,
)
from worker.embedded_redis.server import _KeeperFailed, _start_server, _stop_server

logger = logging.getLogger(__name__)

_READY = b"ready"


class _Terminated(SystemExit):
    pass


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(128 + signum)


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
    # Everything the keeper and redis-server create (the append-only file with queued bug
    # reports and share links among it) is private to this user.
    os.umask(0o077)
    log_fd = os.open(
        _Paths(data_dir).keeper_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | O_NOFOLLOW, 0o600
    )
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
