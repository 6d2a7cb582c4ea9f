"""A producer loads only what enqueueing needs: not the worker's use case, nor dramatiq,
nor the vendor libraries.

The import contracts (``lint-imports``) check the static graph; this checks what
actually lands in ``sys.modules`` when a backend imports the producers' API and
when ``replay-attach enqueue`` loads its command line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "dramatiq",
    "zenpy",
    "jira",
    "requests",
    "tenacity",
    "integrations",
    "sandbox",
    "worker.attach.use_case",
)
#: The project's root error: the one module of integrations that imports nothing.
ROOT_ERROR = ("integrations", "integrations.root_error")


def loaded_after(code: str) -> list[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    modules: list[str] = json.loads(out)
    return modules


@pytest.mark.parametrize(
    "code",
    [
        "from worker import enqueue_bug_report, enqueue_many, BugReport, InvalidEvent",
        "import worker.cli",
    ],
)
def test_the_producers_api_and_the_command_line_load_no_vendor_library(code: str) -> None:
    modules = loaded_after(code)
    heavy = [m for m in modules if (m.split(".")[0] in HEAVY or m in HEAVY) and m not in ROOT_ERROR]
    assert heavy == []
    assert "worker.jobs.producer" in modules or "worker.cli" in modules


def test_importing_worker_alone_loads_nothing_but_the_package() -> None:
    modules = loaded_after("import worker")
    assert [m for m in modules if m.startswith("worker")] == ["worker"]
    assert not {"pydantic", "redis", "dramatiq"} & set(modules)
