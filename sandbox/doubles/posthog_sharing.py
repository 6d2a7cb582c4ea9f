"""The sharing state of the PostHog double: each session's current sharing configuration, and
every token ever handed out, so that dead links can be told from unknown ones.

Mirrors PostHog's `SharingConfiguration` rows (`posthog/models/sharing_configuration.py`, see
docs/notes external-apis.md):

- a session has one current config (PostHog: the row whose `expires_at` is null);
- disabling turns the current token off at once, and with it any token still in a refresh's
  grace period (current PostHog's `revoke_grace_period_tokens`);
- re-enabling after a disable issues a new token (`"new_token"`, current PostHog) or flips the
  same config back on, so the old token works again (`"same_token"`, older PostHog);
- `POST .../sharing/refresh/` (`rotate_access_token`) creates a new config with a new token and
  the old config's `enabled`; the old token keeps working for a grace period only if its config
  was enabled.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

#: What re-enabling a disabled share does: a new token, or the old one back.
REENABLE_MODES = ("new_token", "same_token")


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def check_reenable(mode: str) -> str:
    if mode not in REENABLE_MODES:
        raise ValueError(f"reenable must be one of {REENABLE_MODES}, not {mode!r}")
    return mode


@dataclass
class Share:
    """The current sharing configuration of one recording."""

    token: str
    enabled: bool
    created_at: str


@dataclass
class Token:
    """One token handed out, live or dead."""

    session_id: str
    # The token's config is enabled (or, for a racing PATCH, has won the race).
    live: bool
    # `time.monotonic()` at which a token rotated out by a refresh stops working; None while
    # its config is current (PostHog's `expires_at`).
    expires_at: float | None = None

    def serving(self, now: float) -> bool:
        """Whether the public pages show the replay for this token at `now`."""
        return self.live and (self.expires_at is None or now < self.expires_at)


def config_json(share: Share) -> dict[str, Any]:
    """A config as `SharingConfigurationSerializer` renders it."""
    return {
        "created_at": share.created_at,
        "enabled": share.enabled,
        "access_token": share.token,
        "password_required": False,
        "settings": {},
        "share_passwords": [],
    }


def unsaved_config_json() -> dict[str, Any]:
    """GET on a never-shared recording: an unsaved config whose token works nowhere."""
    return config_json(Share(secrets.token_urlsafe(16), False, "")) | {"created_at": None}


class SharingStore:
    """The configs and tokens of one double. Not locked: `PostHogDouble` calls it under its
    `_state` lock."""

    def __init__(self) -> None:
        self.shares: dict[str, Share] = {}
        self.tokens: dict[str, Token] = {}
        # Tokens created for a session whose enabling PATCH is still inside the race window.
        self.racing: dict[str, list[str]] = {}

    def new_token(self, session_id: str, *, live: bool) -> str:
        token = secrets.token_urlsafe(16)
        self.tokens[token] = Token(session_id=session_id, live=live)
        return token

    def new_share(self, session_id: str, *, enabled: bool) -> Share:
        """A new current config for `session_id` with a new token, replacing any other."""
        share = Share(self.new_token(session_id, live=enabled), enabled, iso_now())
        self.shares[session_id] = share
        return share

    def reenable(self, share: Share) -> Share:
        """`"same_token"`: turn a disabled config back on, its token working again."""
        share.enabled = True
        self.tokens[share.token].live = True
        return share

    def disable(self, session_id: str) -> Share:
        """Turn the link off at once; a never-shared recording still gets a (disabled) config."""
        share = self.shares.get(session_id)
        if share is None:
            return self.new_share(session_id, enabled=False)
        share.enabled = False
        self.tokens[share.token].live = False
        # Tokens rotated out by a refresh die with it (PostHog's revoke_grace_period_tokens).
        now = time.monotonic()
        for info in self.tokens.values():
            if info.session_id == session_id and info.expires_at is not None:
                info.expires_at = min(info.expires_at, now)
        return share

    def rotate(self, session_id: str, grace_seconds: float) -> Share:
        """A new config with a new token and the current config's `enabled` (disabled for a
        never-shared recording); the old token serves `grace_seconds` more if it was live."""
        old = self.shares.get(session_id)
        enabled = old is not None and old.enabled
        if old is not None:
            info = self.tokens[old.token]
            info.expires_at = time.monotonic() + max(0.0, grace_seconds)
            if grace_seconds <= 0:
                info.live = False
        return self.new_share(session_id, enabled=enabled)

    def serving(self, token: str, now: float | None = None) -> bool:
        info = self.tokens.get(token)
        return info is not None and info.serving(time.monotonic() if now is None else now)

    def summaries(self, base_url: str) -> dict[str, Any]:
        """Plain data for the console."""
        now = time.monotonic()
        return {
            "shares": [
                {
                    "session_id": sid,
                    "access_token": share.token,
                    "enabled": share.enabled,
                    "live": self.tokens[share.token].serving(now),
                    "share_url": f"{base_url}/shared/{share.token}",
                    "created_at": share.created_at,
                }
                for sid, share in self.shares.items()
            ],
            "dead_tokens": sorted(t for t, info in self.tokens.items() if not info.serving(now)),
            # Rotated out by a refresh, still working until their grace period ends.
            "grace_tokens": sorted(
                t
                for t, info in self.tokens.items()
                if info.expires_at is not None and info.serving(now)
            ),
        }
