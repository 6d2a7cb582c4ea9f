"""The files a started embedded Redis writes are private, and the redis-server binary chosen is
the newer of the one on PATH and the bundled one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis

from worker.embedded_redis import EmbeddedRedis, files

pytest_plugins = ["tests.test_embedded_redis_support"]


def test_everything_the_server_writes_is_private_and_old_files_are_made_so(
    data_dir: Path, users: list[EmbeddedRedis]
) -> None:
    # A log left world-readable by an earlier version, in a directory only we can enter.
    old_log = data_dir / "redis.log"
    old_log.write_text("earlier run\n")
    old_log.chmod(0o644)
    user = EmbeddedRedis(data_dir)
    users.append(user)
    with redis.Redis.from_url(user.acquire()) as client:
        client.set("queued", "a bug report")
        client.bgrewriteaof()
    # Redis 6 writes appendonly.aof, Redis 7 an appendonlydir of several files.
    entries = {str(p.relative_to(data_dir)): p.lstat().st_mode for p in data_dir.rglob("*")}
    assert "redis.conf" in entries and any(name.startswith("appendonly") for name in entries)
    assert {n: oct(stat.S_IMODE(m)) for n, m in entries.items() if m & 0o077} == {}


def _fake_server(directory: Path, version: str) -> Path:
    script = directory / "redis-server"
    script.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0 bits=64'\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(("version", "chosen"), [("99.0.0", "on PATH"), ("1.0.0", "bundled")])
def test_a_redis_server_on_path_is_preferred_only_when_newer_than_the_bundled_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, chosen: str
) -> None:
    fake = _fake_server(tmp_path, version)
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = files._redis_server_binary()
    assert (binary == fake) == (chosen == "on PATH")
    if chosen == "bundled":
        assert binary == files._bundled_redis_server()
