"""Every error class of the project derives from its one root, ``ReplayAttachError``.

Each module of the worker, integrations and sandbox packages is imported and its
exception classes are checked, so that a new error cannot start a tree of its own.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

from integrations.root_error import ReplayAttachError
from worker.errors import ReplayAttachError as ReExported
from worker.errors import StoreUnavailable

PACKAGES = ("worker", "integrations", "sandbox")

#: Modules that do their work when imported; they must define no class (checked from source).
RUN_AT_IMPORT = {"worker.__main__", "worker.worker_process"}

#: Private control-flow exceptions that never leave the module that raises them.
STAY_IN_THEIR_MODULE = {
    "worker.config.loader._Unclosed",
    "worker.embedded_redis.keeper._Terminated",  # a SystemExit: the keeper's signal handler
}


def project_modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        names += [
            info.name for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")
        ]
    return sorted(names)


def test_the_modules_run_at_import_define_no_class() -> None:
    for name in RUN_AT_IMPORT:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text())
        assert not [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)], name


def test_every_project_error_derives_from_the_root() -> None:
    outside: list[str] = []
    checked = 0
    for name in project_modules():
        if name in RUN_AT_IMPORT:
            continue
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != name:  # imported from elsewhere: checked where it lives
                continue
            qualified = f"{name}.{attribute}"
            checked += 1
            if not issubclass(value, ReplayAttachError) and qualified not in STAY_IN_THEIR_MODULE:
                outside.append(qualified)
    assert outside == [], f"not derived from ReplayAttachError: {outside}"
    assert checked >= 10  # the walk found the project's errors


def test_the_worker_re_exports_the_root_and_store_unavailable_is_under_it() -> None:
    assert ReExported is ReplayAttachError
    assert issubclass(StoreUnavailable, ReplayAttachError)
