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
