"""The intake's refusals: an error status and a message that reveals no secret."""

from __future__ import annotations

from worker.errors import ReplayAttachError

#: What a 503 asks the sender to wait before resending.
RETRY_AFTER_SECONDS = 10


class Refused(ReplayAttachError):
    """A delivery answered with an error status and a message that reveals no secret.

    With ``reason``, a refusal that protects the intake (counted by reason); with
    ``retry_after``, the seconds the sender should wait before sending again; ``detail``
    is logged by the server, never answered.
    """

    def __init__(
        self,
        status: int,
        message: str,
        reason: str | None = None,
        retry_after: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.retry_after = retry_after
        self.detail = detail


def unauthorized(why: str) -> Refused:
    """The one 401 answer, whatever failed; ``why`` goes to the server's log only."""
    return Refused(401, "missing or invalid credentials", detail=why)


DOOR_OFF = Refused(404, "not found")

BODIES_BUSY = Refused(
    503, "too many requests are sending their body; send again later", "bodies_busy", 1
)
