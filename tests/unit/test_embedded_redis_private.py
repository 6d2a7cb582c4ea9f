"""The embedded Redis trusts no data directory another local user could tamper with.

It holds queued bug reports and share links, and ``redis.conf`` can load code into
redis-server. Each refusal names the path and the fix, and starts nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from tests.test_embedded_redis_support import keeper_processes, server_processes
from worker.embedded_redis import EmbeddedRedis, EmbeddedRedisError, files

pytest_plugins = ["tests.test_embedded_redis_support"]

NOBODY = 65534
as_root = pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")


def refused(data_dir: Path, *words: str) -> str:
    with pytest.raises(EmbeddedRedisError) as error:
        EmbeddedRedis(data_dir).acquire()
    message = str(error.value)
    for word in words:
        assert word in message, message
    return message


def test_a_data_directory_that_is_a_symbolic_link_is_refused(data_dir: Path) -> None:
    link = data_dir.with_name(data_dir.name + "-link")
    link.symlink_to(data_dir)
    try:
        refused(link, str(link), "is a symbolic link", "REPLAY_ATTACH_DATA_DIR")
    finally:
        link.unlink()
    assert not server_processes(data_dir) and not keeper_processes(data_dir)
    assert list(data_dir.iterdir()) == []


def test_a_data_directory_open_to_others_is_refused(data_dir: Path) -> None:
    data_dir.chmod(0o755)
    refused(data_dir, str(data_dir), "open to group or others (mode 755)", f"chmod 700 {data_dir}")
    assert list(data_dir.iterdir()) == []


@as_root
def test_a_data_directory_of_another_user_is_refused(data_dir: Path) -> None:
    os.chown(data_dir, NOBODY, NOBODY)
    refused(data_dir, str(data_dir), f"belongs to uid {NOBODY}, not to you")


def test_a_symbolic_link_planted_in_the_data_directory_is_refused(
    data_dir: Path, tmp_path: Path
) -> None:
    """A planted redis.conf link would make the keeper write the victim's file (or load a
    module from it); the user refuses before spawning any keeper."""
    target = tmp_path / "victim.txt"
    target.write_text("untouched")
    (data_dir / "redis.conf").symlink_to(target)
    refused(data_dir, str(data_dir / "redis.conf"), "is a symbolic link", "remove it")
    assert target.read_text() == "untouched"
    assert not keeper_processes(data_dir)


@as_root
def test_a_file_of_another_user_in_the_data_directory_is_refused(data_dir: Path) -> None:
    seeded = data_dir / "appendonly.aof"
    seeded.write_text("*1\r\n$8\r\nFLUSHALL\r\n")
    os.chown(seeded, NOBODY, NOBODY)
    refused(data_dir, str(seeded), f"belongs to uid {NOBODY}", "remove it")


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
