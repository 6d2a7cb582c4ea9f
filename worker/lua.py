"""Lua scripts live in ``.lua`` files beside the module that runs them, to be read and linted
as Lua; each file opens with what its ``KEYS`` and ``ARGV`` hold and what it returns."""

from __future__ import annotations

from importlib.resources import files


def lua_script(module: str, name: str) -> str:
    """The text of ``name``, a ``.lua`` file in the package of ``module`` (its ``__name__``)."""
    package = module.rpartition(".")[0]
    return files(package).joinpath(name).read_text(encoding="utf-8")
