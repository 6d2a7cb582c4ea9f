"""Credentials as a vendor reads them from a request's `Authorization` header."""

from __future__ import annotations

import base64
from collections.abc import Mapping


def basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic` header, or None."""
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
