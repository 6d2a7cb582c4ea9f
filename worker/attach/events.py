"""The bug-report event: the contract between producers and the worker.

An event names one PostHog session and exactly one target ticket. It is
validated when it is enqueued and again when the worker takes it, because a
message can also be written by hand or by an older producer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import IO, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from worker.attach.tickets import Ticket
from worker.errors import ReplayAttachError

#: PostHog session ids are UUIDs, but any 1-200 characters of letters, digits,
#: ``-`` and ``_`` are accepted. Nothing else: the id goes into a URL path.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"

#: A Jira issue key: project key (a letter, then letters, digits or ``_``),
#: a dash, an issue number.
JIRA_ISSUE_PATTERN = r"^[A-Z][A-Z0-9_]{0,254}-[1-9][0-9]{0,17}$"

MAX_DESCRIPTION_CHARS = 2000
MAX_PAGE_URL_CHARS = 2048
#: The longest line of a JSON Lines file of events, its newline included.
MAX_LINE_CHARS = 64 * 1024

SessionId = Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)]

#: A PostHog distinct id: any 1-200 characters but control characters (it may be an email).
DISTINCT_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"


class InvalidEvent(ReplayAttachError, ValueError):
    """An event that does not follow the contract; the message names the problem."""


class BugReport(BaseModel):
    """One bug report whose session replay should appear on one ticket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: SessionId
    zendesk_ticket: Annotated[StrictInt, Field(gt=0, lt=2**63)] | None = None
    jira_issue: str | None = None
    #: Seconds into the recording where the bug happened: the link gets ``?t=``.
    replay_seconds: Annotated[StrictInt, Field(ge=0, le=7 * 24 * 3600)] | None = None
    #: When the user reported the bug (ISO 8601 with a time zone).
    reported_at: datetime | None = None
    #: The page the user was on.
    page_url: Annotated[str, Field(max_length=MAX_PAGE_URL_CHARS)] | None = None
    #: The reporter's own words, shown (escaped) in the note or comment.
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS)] | None = None
    #: PostHog's id of the reporter (``posthog.get_distinct_id()``): the recording must be theirs.
    distinct_id: Annotated[str, StringConstraints(pattern=DISTINCT_ID_PATTERN)] | None = None

    @field_validator("jira_issue", mode="before")
    @classmethod
    def _jira_key(cls, value: Any) -> Any:
        # Jira keys are case-insensitive; store them as Jira shows them.
        if isinstance(value, str):
            value = value.strip().upper()
            if not re.match(JIRA_ISSUE_PATTERN, value):
                raise ValueError("must be a Jira issue key such as BUG-42")
        return value

    @field_validator("page_url")
    @classmethod
    def _page_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("reported_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone, e.g. 2026-11-26T10:00:00Z")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> BugReport:
        if (self.zendesk_ticket is None) == (self.jira_issue is None):
            raise ValueError("exactly one of zendesk_ticket and jira_issue is required")
        return self

    @property
    def ticket(self) -> Ticket:
        if self.zendesk_ticket is not None:
            return Ticket.zendesk(self.zendesk_ticket)
        assert self.jira_issue is not None  # exactly one of the two (_one_target)
        return Ticket.jira(self.jira_issue)

    @property
    def target(self) -> str:
        """A stable name of the ticket, used in Redis keys and messages."""
        return str(self.ticket)

    @property
    def target_label(self) -> str:
        """The ticket as a support engineer would name it."""
        return self.ticket.label

    def to_message(self) -> dict[str, Any]:
        """The JSON form carried on the queue (unset fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def _explain(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "event"
        kind = item["type"]
        if kind == "missing":
            problem = "is required"
        elif kind == "extra_forbidden":
            problem = "is not a known field"
        elif kind == "string_pattern_mismatch" and field == "session_id":
            problem = "must be 1-200 letters, digits, '-' or '_'"
        elif kind == "string_pattern_mismatch" and field == "distinct_id":
            problem = "must be 1-200 characters with no control characters"
        elif field == "zendesk_ticket":
            problem = "must be a positive integer (a Zendesk ticket id)"
        else:
            problem = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{field}: {problem}" if item["loc"] else problem)
    return "; ".join(problems)


def parse_event(data: Any) -> BugReport:
    """Validate one event given as a mapping; raise ``InvalidEvent``."""
    if isinstance(data, BugReport):
        return data
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"an event must be a JSON object, not {type(data).__name__}")
    try:
        return BugReport.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidEvent(_explain(exc)) from None


def require_distinct_id(report: BugReport) -> BugReport:
    """``report``, refused without a ``distinct_id`` (``posthog.require_distinct_id``)."""
    if report.distinct_id is None:
        raise InvalidEvent(
            "distinct_id: is required (posthog.require_distinct_id is on): give PostHog's "
            "distinct id of the reporter, taken with the session id"
        )
    return report


def parse_event_line(line: str) -> BugReport:
    """Validate one JSON Lines line; raise ``InvalidEvent``."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise InvalidEvent("not an event: its JSON is nested too deeply") from None
    except ValueError:
        # json.loads refuses an integer longer than Python's int-to-string digit limit
        # with a plain ValueError.
        raise InvalidEvent(
            "not an event: it holds a number too long to read (an event's numbers are short)"
        ) from None
    return parse_event(data)


def _is_text(line: str) -> bool:
    """Whether ``line`` is valid Unicode: bytes that were not UTF-8 are read as lone surrogates."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def iter_event_lines(stream: IO[str]) -> Iterator[tuple[int, BugReport]]:
    """Yield (line number, event) for each non-blank line, streaming.

    Raises ``InvalidEvent`` naming the line number of the first bad line. ``stream`` should
    decode with ``errors="surrogateescape"``, so that bytes that are not UTF-8 are reported
    with their line rather than raised by the decoder, which reads ahead of the lines.
    """
    number = 0
    # Read with a limit: a line of gigabytes must not be held in memory whole.
    while line := stream.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise InvalidEvent(
                f"line {number}: longer than {MAX_LINE_CHARS} characters (an event is far smaller)"
            )
        if not line.strip():
            continue
        if not line.isascii() and not _is_text(line):
            raise InvalidEvent(f"line {number}: not UTF-8 text")
        try:
            yield number, parse_event_line(line)
        except InvalidEvent as exc:
            raise InvalidEvent(f"line {number}: {exc}") from None
