"""A helpdesk is a plug: the use case calls helpdesks through ``worker.attach.helpdesks`` and
never names one, so that adding a helpdesk does not edit it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from worker.attach.helpdesks import HELPDESKS, helpdesk_of
from worker.attach.tickets import Ticket

ROOT = Path(__file__).resolve().parents[2]
USE_CASE = [
    "worker/attach/use_case.py",
    "worker/attach/steps.py",
    "worker/attach/revoke.py",
    "worker/attach/requester.py",
    "worker/attach/ledger.py",
    "worker/attach/links.py",
    "worker/jobs/outcomes.py",
]
HELPDESK_NAME = re.compile("|".join(HELPDESKS), re.IGNORECASE)


def _code_names(path: Path) -> list[str]:
    """Every identifier and string of the module's code, its docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, ast.alias):
            names.append(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                names.append(node.value)
    return names


@pytest.mark.parametrize("module", USE_CASE)
def test_the_use_case_names_no_helpdesk(module: str) -> None:
    named = [name for name in _code_names(ROOT / module) if HELPDESK_NAME.search(name)]
    assert named == [], f"{module} names a helpdesk; its plug in worker/attach/helpdesks/ should"


def test_each_helpdesk_is_found_by_its_system_and_has_its_own_door() -> None:
    assert sorted(HELPDESKS) == ["jira", "zendesk"]
    assert len({desk.door for desk in HELPDESKS.values()}) == len(HELPDESKS)
    for system, desk in HELPDESKS.items():
        assert desk.system == system
        assert helpdesk_of(Ticket.parse(f"{system}:ABC-1")) is desk


def test_a_ticket_of_no_known_helpdesk_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'linear'"):
        helpdesk_of(Ticket.parse("linear:ENG-1"))
