"""The embedded Redis trusts no data directory another local user could tamper with.

It holds queued bug reports and share links, and ``redis.conf`` can load code into
redis-server. Each refusal names the path and the fix, and starts nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_embedded_redis_support import keeper_processes, server_processes
from worker.embedded_redis import EmbeddedRedis, EmbeddedRedisError

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
