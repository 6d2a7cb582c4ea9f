"""What a benchmark writes down: its figures as JSON under bench/results/, with the machine they
were measured on, so that a later run on another machine or commit can be told apart."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import redis
from fleet import ROOT

#: Where each benchmark writes its figures, one file per benchmark.
RESULTS_DIR = ROOT / "bench" / "results"


def machine(url: str) -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = found.group(1).strip() if found else ""
    client = redis.Redis.from_url(url)
    server: dict[str, Any] = client.info("server")
    client.close()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **checkout(),
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis": server["redis_version"],
        "redis_where": "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded",
    }


def checkout() -> dict[str, Any]:
    """The commit measured, and whether the checkout had changes not in it (None: not a git
    checkout, or git is missing). The results files themselves are not counted: a run that was
    not committed yet would otherwise mark every run after it."""
    try:
        commit = _git("rev-parse", "HEAD")
        changed = bool(
            _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes": None}
    return {"commit": commit, "uncommitted_changes": changed}


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {path}")
