"""The worker's errors shared across its layers, under the project's one root.

``ReplayAttachError`` (from ``integrations.root_error``, where the integrations may import it
too) is the root of every error this project raises; docs/architecture.md draws the tree.
"""

from __future__ import annotations

from integrations.root_error import ReplayAttachError

__all__ = ["AttachLater", "AttachRefused", "ReplayAttachError", "StoreUnavailable"]


class StoreUnavailable(ReplayAttachError):
    """Redis (the queue, the ledger, the failed jobs) could not be reached or answered too late.

    The message is one line naming which Redis and what to check, never its password;
    ``worker.jobs.redis_connection.store_calls`` raises it where Redis is called.
    """


class AttachLater(ReplayAttachError):
    """The job must wait for a reason of this project's own, not a vendor's (another worker is
    attaching the same session to the same ticket): try again after ``retry_after`` seconds."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class AttachRefused(ReplayAttachError):
    """The attachment must not happen, by this project's own rule (the recording is another
    person's): retrying cannot help, the job fails with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
