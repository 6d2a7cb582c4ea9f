"""What every part of the configuration raises, and how a key's variable is named in it."""

from __future__ import annotations

from worker.errors import ReplayAttachError


class ConfigError(ReplayAttachError):
    """The configuration cannot be used; the message says which key and why."""


def origin_hint(origins: dict[str, str], key: str) -> str:
    """`` (from ${NAME})`` for a key whose value came from ``NAME``, else nothing."""
    origin = origins.get(key)
    return f" (from ${{{origin}}})" if origin else ""
