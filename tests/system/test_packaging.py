"""What installing from a wheel and running in a container rely on, checked without Docker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.containers import clean_copy

ROOT = Path(__file__).parents[2]


def test_the_wheel_ships_the_top_level_configuration_and_the_lua_scripts(tmp_path: Path) -> None:
    # From a clean copy: a build/ directory left in the work tree could hide a missing file.
    source = clean_copy(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("replay_attach-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("worker/config.yaml")
        names = set(archive.namelist())
    # A copy of the file itself, not of the link that stands for it in the source tree.
    assert shipped == (ROOT / "config.yaml").read_bytes()
    scripts = {str(p.relative_to(ROOT)) for p in (ROOT / "worker").rglob("*.lua")}
    assert scripts and scripts <= names, scripts - names


@pytest.mark.parametrize("command", [["worker"], ["serve"]])
def test_a_container_refuses_the_embedded_redis_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "REPLAY_ATTACH_REQUIRE_REDIS_URL": "1",
        "POSTHOG_PROJECT_ID": "7",
        "POSTHOG_PERSONAL_API_KEY": "phx_secret_value",
        "REPLAY_ATTACH_INTAKE_TOKENS": "intake-token-0123456789",
    }
    result = subprocess.run(
        [sys.executable, "-m", "worker", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("replay-attach: REDIS_URL is not set")
    assert result.stderr.count("\n") == 1
    # Nothing was started in the data directory the embedded Redis would have used.
    assert not (tmp_path / ".local").exists()
