"""Docker for the image tests: the base images, the build, and containers that clean up.

The official base images are pulled when a registry answers; otherwise
``deploy/docker/debian-base-image.sh`` makes them from the Debian archive once and keeps them
tagged, so later runs start from the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parent.parent
#: The Dockerfile's and compose.yaml's defaults, tried first.
OFFICIAL_PYTHON_IMAGE = "python:3.12-slim-bookworm"
OFFICIAL_REDIS_IMAGE = "redis:7-alpine"
#: Where the build context is given a CA bundle for pip (the Dockerfile's PIP_CERT).
CONTEXT_CA = ".pip-ca.pem"


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
    return result


def clean_copy(destination: Path) -> Path:
    """The project's files as a fresh clone has them (tracked or not ignored), links kept."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, destination / name
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the work tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        else:
            shutil.copy2(source, target)
    return destination


def base_image(kind: str) -> str:
    """``PYTHON_IMAGE``/``REDIS_IMAGE`` when set, else the official image, else a Debian one."""
    variable, official = {
        "python": ("PYTHON_IMAGE", OFFICIAL_PYTHON_IMAGE),
        "redis": ("REDIS_IMAGE", OFFICIAL_REDIS_IMAGE),
    }[kind]
    chosen = os.environ.get(variable)
    if chosen:
        return chosen
    if docker("image", "inspect", official, check=False).returncode == 0:
        return official
    if docker("pull", official, check=False, timeout=600).returncode == 0:
        return official
    made = subprocess.run(
        [str(ROOT / "deploy/docker/debian-base-image.sh"), kind],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if made.returncode != 0:
        raise AssertionError(f"could not make a {kind} base image:\n{made.stderr[-3000:]}")
    return made.stdout.strip().splitlines()[-1]


def pip_build_args() -> list[str]:
    """pip's index and CA bundle as build arguments, when this machine's pip has them."""
    args = []
    index = os.environ.get("PIP_INDEX_URL", "")
    if index.startswith(("http://", "https://")):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    return args


def pip_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts, if it names one (a TLS-inspecting proxy's)."""
    named = os.environ.get("PIP_CERT")
    if not named:
        found = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.cert"],
            capture_output=True,
            text=True,
            check=False,
        )
        named = found.stdout.strip() if found.returncode == 0 else ""
    return Path(named) if named and Path(named).is_file() else None


def build_image(tag: str, python_image: str, context: Path) -> float:
    """``docker build`` from a clean copy of the project; the seconds it took."""
    clean_copy(context)
    args = ["build", "--tag", tag, "--build-arg", f"PYTHON_IMAGE={python_image}"]
    args += pip_build_args()
    bundle = pip_ca_bundle()
    if bundle is not None:
        shutil.copy(bundle, context / CONTEXT_CA)
        args += ["--build-arg", f"PIP_CERT=/src/{CONTEXT_CA}"]
    start = time.monotonic()
    docker(*args, str(context), timeout=1200)
    seconds = time.monotonic() - start
    # The classic builder keeps each build's first stage as an untagged image.
    docker("image", "prune", "--force", "--filter", "label=org.replay-attach.stage=build")
    return seconds


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


@contextmanager
def container(name: str, *run_args: str) -> Iterator[str]:
    """``docker run -d --name NAME ARGS``; removed afterwards, its log printed if it failed."""
    docker("rm", "--force", name, check=False)
    docker("run", "--detach", "--name", name, *run_args)
    try:
        yield name
    finally:
        docker("rm", "--force", name, check=False)


def logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr
