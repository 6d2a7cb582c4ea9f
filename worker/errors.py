"""The worker's errors shared across its layers, under the project's one root.

``ReplayAttachError`` (from ``integrations.root_error``, where the integrations may import it
too) is the root of every error this project raises; docs/architecture.md draws the tree.
"""

from __future__ import annotations

from integrations.root_error import ReplayAttachError

__all__ = ["ReplayAttachError", "StoreUnavailable"]


class StoreUnavailable(ReplayAttachError):
    """Redis (the queue, the ledger, the failed jobs) could not be reached or answered too late.

    The message is one line naming which Redis and what to check, never its password;
    ``worker.jobs.redis_connection.store_calls`` raises it where Redis is called.
    """
