"""The root of every error this project raises: ``ReplayAttachError``.

It lives here, alone and importing nothing, because the integrations may not import the
worker while every part of the worker (its intake and producers too, which load no vendor
library) may import this one module; ``worker.errors`` re-exports it with the worker's own
shared errors, and docs/architecture.md draws the whole tree.
"""

from __future__ import annotations


class ReplayAttachError(Exception):
    """Something this project raises on purpose: its message is written for the operator."""
