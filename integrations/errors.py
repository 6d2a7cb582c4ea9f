"""The small error taxonomy every integration translates its failures into.

Each integration decides, once, at its boundary, whether a failure is worth
retrying later or is permanent, and words the reason for a support engineer.
Nothing above the integrations sees requests, zenpy or jira exceptions.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """A call to PostHog, Zendesk or Jira failed.

    ``reason`` is safe to show and store: it never contains a secret.
    """

    def __init__(self, system: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.system = system
        self.reason = reason
        self.status = status


class RetryLater(IntegrationError):
    """A transient failure: try again after ``retry_after`` seconds (None: our backoff).

    ``maybe_applied`` is true when a write may have reached the vendor even
    though no confirmation came back (a reset or timeout after sending); the
    next attempt must look at the ticket before writing again.
    """

    def __init__(
        self,
        system: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
        never_sent: bool = False,
    ) -> None:
        super().__init__(system, reason, status=status)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied
        self.never_sent = never_sent


class PermanentFailure(IntegrationError):
    """Retrying cannot help until a person mends the cause named in ``reason``."""


class NotConfigured(PermanentFailure):
    """The event targets a system this deployment has no credentials for."""
