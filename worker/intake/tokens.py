"""The intake tokens: ``Authorization: Bearer <token>``, compared in constant time.

Every check answers only yes or no (and, for the server's log, why not): the
caller answers the same 401 whatever failed, so that a failure reveals nothing.
The senders' signature checks compare with ``same_secret`` too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from pydantic import SecretStr


def same_secret(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in a time that does not tell how much of it matched."""
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_id(token: SecretStr) -> str:
    """A name of a configured token that is safe to store (Redis keys): a digest, never the token.

    Tokens are long and random, so their digest tells nothing of them.
    """
    return hashlib.sha256(token.get_secret_value().strip().encode()).hexdigest()[:32]


def matching_token(authorization: str | None, tokens: Iterable[SecretStr]) -> str | None:
    """The ``token_id`` of the configured token the header carries, else None.

    The whole token must match: every token is compared in full, to keep time flat.
    """
    given = bearer_token(authorization)
    if given is None:
        return None
    found = None
    for token in tokens:
        if same_secret(given, token.get_secret_value().strip()) and found is None:
            found = token_id(token)
    return found


def token_problem(authorization: str | None, tokens: Iterable[SecretStr]) -> str | None:
    """Why the header does not carry one of ``tokens``, whole (None: it does)."""
    if bearer_token(authorization) is None:
        return "no Authorization: Bearer header"
    if matching_token(authorization, tokens) is None:
        return "a bearer token that is not a configured one"
    return None
