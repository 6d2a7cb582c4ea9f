"""Configuration: ``config.yaml`` with ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}``.

As in a shell, ``${NAME:-default}`` takes the default when ``NAME`` is unset or
empty, ``${NAME-default}`` only when it is unset: an empty ``NAME`` then turns
the setting off (a time to live of "never", say).

``load_config()`` reads the file named by ``REPLAY_ATTACH_CONFIG`` (default: the
``config.yaml`` shipped inside the package), substitutes environment variables,
validates everything and returns a frozen ``Config``. Any problem raises one
``ConfigError`` whose message names each bad key (and the environment variable
it came from) without ever echoing a value: values may be secrets.

PostHog's project id and personal API key are optional at load time, so that
the internet-facing ``serve`` and the producers start without any vendor
credential; the commands that talk to PostHog ask for them with
``Config.require()``, which fails with the same kind of message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from worker.config.errors import ConfigError, origin_hint
from worker.config.model import Config

#: Environment variable naming the configuration file.
CONFIG_ENV = "REPLAY_ATTACH_CONFIG"

#: The shipped, commented default configuration: package data in a wheel; in the source tree a
#: symbolic link to the repository's top-level ``config.yaml``, the one copy that is edited.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}")
#: A dotted configuration key named in a problem's text (``zendesk.email``).
_KEY_IN_TEXT = re.compile(r"\b([a-z_]+\.[a-z_]+)\b")


class _Unclosed(Exception):
    """A value with a ``${`` that no ``}`` closes (it would be taken literally)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _substitute(
    node: Any, env: Mapping[str, str], path: tuple[str, ...], origins: dict[str, str]
) -> Any:
    """Replace ``${NAME}`` references; a value that ends up empty counts as unset."""
    if isinstance(node, dict):
        return {
            key: _substitute(value, env, (*path, str(key)), origins) for key, value in node.items()
        }
    if isinstance(node, list):
        return [_substitute(value, env, (*path, str(i)), origins) for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    if "${" in _REFERENCE.sub("", node):
        raise _Unclosed(".".join(path))
    names = [match.group(1) for match in _REFERENCE.finditer(node)]
    if names:
        origins[".".join(path)] = ", ".join(names)

    def replace(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if match.group(2) == "" and match.group(3) is not None:  # ${NAME-default}
            return match.group(3) if value is None else value
        return value if value else (match.group(3) or "")

    result = _REFERENCE.sub(replace, node)
    return None if result.strip() == "" else result


def _describe(error: ValidationError, origins: dict[str, str], source: str) -> str:
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        key = key or "(top level)"
        if item["type"] == "missing" or item.get("input", "") is None:
            problem = "is required"
        elif item["type"] == "extra_forbidden":
            problem = "is not a known setting"
        else:
            problem = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"  {key}{origin_hint(origins, key)}: {_name_variables(problem, origins)}")
    return f"invalid configuration in {source}:\n" + "\n".join(lines)


def _name_variables(problem: str, origins: dict[str, str]) -> str:
    """``problem`` with each key it names followed by the variable that sets it."""

    def named(match: re.Match[str]) -> str:
        origin = origins.get(match.group(1))
        return f"{match.group(1)} ({origin})" if origin else match.group(1)

    return _KEY_IN_TEXT.sub(named, problem)


#: libyaml's safe loader when PyYAML was built with it (its wheels are): the same
#: documents and errors, parsed in C, which every short-lived command pays for.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _empty_sections_to_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    # A YAML section whose every key is commented out parses as None.
    return {key: ({} if value is None else value) for key, value in raw.items()}


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, substitute and validate the configuration; raise ``ConfigError``."""
    env = os.environ if env is None else env
    chosen = Path(path or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {chosen}: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader, C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"configuration file {chosen} is not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {chosen} must be a mapping of sections")
    origins: dict[str, str] = {}
    try:
        substituted = _empty_sections_to_defaults(_substitute(raw, env, (), origins))
    except _Unclosed as exc:
        raise ConfigError(
            f"invalid configuration in {chosen}:\n  {exc.key}: has a ${{ that no }} closes "
            "(write ${NAME}, ${NAME:-default} or ${NAME-default})"
        ) from None
    try:
        config = Config.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins, str(chosen))) from None
    config._origins = origins
    config._source = str(chosen)
    return config
