"""The dependency ranges admit no release with a known vulnerability.

Checked against the installed project's own metadata (``./dev test`` reinstalls it
whenever ``pyproject.toml`` changes).
"""

from __future__ import annotations

import importlib.metadata

import pytest
from packaging.requirements import Requirement

#: (package, a release with a known vulnerability, the advisory).
VULNERABLE = [
    ("requests", "2.32.3", "CVE-2024-47081"),
    ("requests", "2.32.5", "CVE-2026-25645"),
    ("urllib3", "2.6.2", "CVE-2026-21441"),
    ("urllib3", "2.6.3", "CVE-2026-44431, CVE-2026-44432"),
    ("tqdm", "4.66.2", "CVE-2024-34062"),
    ("pydantic", "2.3.0", "CVE-2024-3772"),
    ("starlette", "0.49.0", "CVE-2025-62727"),
    ("starlette", "1.0.0", "CVE-2026-48710"),
    ("starlette", "1.0.1", "CVE-2026-48817, CVE-2026-48818"),
    ("starlette", "1.2.1", "CVE-2026-54282"),
    ("starlette", "1.3.0", "CVE-2026-54283"),
    ("h11", "0.14.0", "CVE-2025-43859"),
    ("h11", "0.15.0", "CVE-2025-43859"),
    ("httptools", "0.6.2", "CVE-2024-27982 (its bundled llhttp 8.1.1)"),
    ("python-json-logger", "3.2.0", "CVE-2025-27607"),
    ("python-json-logger", "3.2.1", "CVE-2025-27607"),
]


def _ranges() -> dict[str, Requirement]:
    requirements = [Requirement(r) for r in importlib.metadata.requires("replay-attach") or []]
    return {r.name.lower(): r for r in requirements if r.marker is None}


@pytest.mark.parametrize(("package", "version", "advisory"), VULNERABLE)
def test_a_vulnerable_release_is_outside_the_range(
    package: str, version: str, advisory: str
) -> None:
    requirement = _ranges()[package]
    assert version not in requirement.specifier, f"{package} {version} ({advisory}) is allowed"


def test_the_installed_releases_are_inside_the_ranges() -> None:
    for name, requirement in _ranges().items():
        assert importlib.metadata.version(name) in requirement.specifier, name
