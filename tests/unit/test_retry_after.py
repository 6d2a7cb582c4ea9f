"""Reading a server's Retry-After header: RFC 9110's two forms, and nothing else."""

from __future__ import annotations

import pytest

from integrations.errors import parse_retry_after

NOW = 1_764_590_400.0  # Mon, 01 Dec 2025 12:00:00 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("12", 12.0),
        (" 120 ", 120.0),
        ("Mon, 01 Dec 2025 12:00:30 GMT", 30.0),
        ("Mon, 01 Dec 2025 11:00:00 GMT", 0.0),  # in the past: no wait of its own
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        # Digits outside ASCII: str.isdigit() accepts them, RFC 9110 does not.
        ("\u00b2", None),  # superscript two: crashed float()
        ("\u0663", None),  # Arabic-Indic three: read as 3
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds
