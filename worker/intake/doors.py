"""What each door reads from its sender's body: bug-report events, or a reason to ignore it.

The doors take the event contract of ``worker.attach.events`` as it is, with
what the senders' templates need on top: placeholders render as strings (so
numeric strings are ids), an empty placeholder means "not given", and a
session may be given as the PostHog replay URL an agent pasted.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.attach.events import JIRA_ISSUE_PATTERN, BugReport, InvalidEvent, parse_event
from worker.config import Config

log = logging.getLogger(__name__)

#: The most events one ``POST /v1/bug-reports`` may carry.
MAX_BATCH_EVENTS = 1000

#: Fields the webhook doors take as numbers, from the strings templates render.
_NUMERIC_FIELDS = ("zendesk_ticket", "replay_seconds")

#: A rendered number: ASCII digits only (``str.isdigit`` also takes "²" and "①", which
#: ``int`` refuses), and no longer than any id or offset can be.
_DIGITS = re.compile(r"[0-9]{1,19}")

#: A JSON integer longer than this is no id or offset of ours: it is kept as
#: ``TooLongNumber``, which every field refuses by name (``json.loads`` would raise a
#: bare ValueError past Python's 4,300-digit conversion limit).
MAX_JSON_INT_DIGITS = 40


class TooLongNumber:
    """A JSON integer of more than ``MAX_JSON_INT_DIGITS`` digits, left unconverted."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def _json_int(text: str) -> int | TooLongNumber:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        return TooLongNumber(len(text))
    return int(text)


#: The path of a replay in PostHog's app, with or without the project: its id, or the public
#: project token (``phc_...``) that posthog-js's ``get_session_replay_url()`` puts there.
_REPLAY_PATH = re.compile(
    r"^/(?:project/(?:\d+|phc_[A-Za-z0-9_-]{1,100})/)?replay/([A-Za-z0-9_-]{1,200})/?$"
)

#: The Zendesk trigger's body: our names for its keys (the rest is the event contract).
_ZENDESK_KEYS = {"ticket_id": "zendesk_ticket"}
#: The ticket's state: ``status`` as ``{{ticket.status}}`` renders it (capitalised, maybe in the
#: account's language, or a custom status's name), and ``status_category`` where the trigger
#: gives one (its five values are fixed), which wins.
_ZENDESK_STATUS = "status"
_ZENDESK_STATUS_CATEGORY = "status_category"


#: Zendesk's statuses and status categories, and what they mean here. "new" is a ticket
#: that was never solved: nothing to reopen, so nothing to record.
_ZENDESK_SOLVED = frozenset({"solved", "closed"})
_ZENDESK_REOPENED = frozenset({"open", "pending", "hold", "on-hold", "on hold"})
_ZENDESK_NEW = "new"


@dataclass(frozen=True)
class TicketStatus:
    """A ticket solved (its links end after ``privacy.revoke_after_solved_days``) or reopened."""

    target: str
    solved: bool
    #: When the sender says the change happened (ms, as signed): an older change never
    #: overrides a newer one, so a captured delivery cannot undo what came after it.
    stated_at_ms: int


@dataclass(frozen=True)
class Ignored:
    """A delivery that carries nothing to enqueue: answered 200 so the sender does not resend."""

    reason: str


def parse_json(body: bytes) -> Any:
    """The body as JSON; raise ``InvalidEvent`` naming what is wrong."""
    try:
        # Decoded here: json.loads would guess UTF-16 or UTF-32 from the first bytes.
        return json.loads(body.decode("utf-8"), parse_int=_json_int)
    except UnicodeDecodeError:
        raise InvalidEvent("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidEvent(f"not valid JSON ({exc.msg} at {where})") from None
    except RecursionError:
        raise InvalidEvent("the JSON is nested too deeply") from None


def _replay_url(value: Any, posthog_host: str) -> tuple[Any, int | None]:
    """(session id, its ``?t=`` seconds) of a replay URL on ``posthog_host``; anything else
    is (unchanged, None)."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return value, None
    parts, host = urlsplit(value.strip()), urlsplit(posthog_host)
    if (parts.scheme, parts.netloc.lower()) != (host.scheme, host.netloc.lower()):
        raise InvalidEvent(f"session_id: a URL, but not one of {posthog_host}")
    found = _REPLAY_PATH.match(parts.path)
    if found is None:
        raise InvalidEvent(
            "session_id: a PostHog URL, but not of a replay (expected "
            f"{posthog_host}/project/<id>/replay/<session id>)"
        )
    moment = parse_qs(parts.query).get("t", [""])[0]
    return found.group(1), int(moment) if _DIGITS.fullmatch(moment) else None


def _session_in(event: dict[str, Any], posthog_host: str) -> dict[str, Any]:
    """``event`` with a replay URL in ``session_id`` read: the session, and its moment as
    ``replay_seconds`` unless the event gives one."""
    session, moment = _replay_url(event["session_id"], posthog_host)
    event["session_id"] = session
    if moment is not None and event.get("replay_seconds") is None:
        event["replay_seconds"] = moment
    return event


def _from_template(data: Mapping[str, Any]) -> dict[str, Any]:
    """A templated event: empty placeholders dropped, numeric strings made numbers."""
    event = {key: value for key, value in data.items() if value not in ("", None)}
    for key in _NUMERIC_FIELDS:
        value = event.get(key)
        if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            event[key] = int(value)
    return event


def _object(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"{what} must be a JSON object, not {type(data).__name__}")
    return data


def _with_session(event: dict[str, Any], posthog_host: str) -> BugReport | Ignored:
    if "session_id" not in event:
        return Ignored("no session id in the delivery (the session field is empty)")
    return parse_event(_session_in(event, posthog_host))


def read_bug_reports(data: Any, posthog_host: str) -> list[BugReport]:
    """``POST /v1/bug-reports``: one event or a list of up to 1,000, all valid or none taken."""
    if isinstance(data, list):
        if not data:
            raise InvalidEvent("the list holds no events")
        if len(data) > MAX_BATCH_EVENTS:
            raise InvalidEvent(f"a list holds at most {MAX_BATCH_EVENTS} events, not {len(data)}")
        reports = []
        for number, item in enumerate(data, start=1):
            try:
                reports.append(_bug_report(item, posthog_host))
            except InvalidEvent as exc:
                raise InvalidEvent(f"event {number}: {exc}") from None
        return reports
    return [_bug_report(data, posthog_host)]


def _bug_report(item: Any, posthog_host: str) -> BugReport:
    event = dict(_object(item, "an event"))
    if "session_id" in event:
        event = _session_in(event, posthog_host)
    return parse_event(event)


def read_zendesk(
    data: Any, posthog_host: str, signed_at_ms: int
) -> tuple[BugReport | Ignored, TicketStatus | None]:
    """A Zendesk trigger's body: ``ticket_id``, ``session_id``, ``status``, and event fields.

    A solved or closed ticket gets no replay: its status is all that is read;
    ``signed_at_ms`` (the signed timestamp header) orders it.
    """
    event = {_ZENDESK_KEYS.get(key, key): value for key, value in _object(data, "the body").items()}
    status = event.pop(_ZENDESK_STATUS, None)
    category = event.pop(_ZENDESK_STATUS_CATEGORY, None)
    event = _from_template(event)
    ticket = event.get("zendesk_ticket")
    if ticket is not None and (isinstance(ticket, bool) or not isinstance(ticket, int)):
        raise InvalidEvent('ticket_id: must be a Zendesk ticket id such as "123"')
    state = _zendesk_status(_known(category) or status, event.get("zendesk_ticket"), signed_at_ms)
    if state is not None and state.solved:
        return Ignored("the ticket is solved or closed: no replay is attached to it"), state
    return _with_session(event, posthog_host), state


def _known(status: Any) -> str | None:
    """A status or category this door knows, lower case; None for anything else."""
    if not isinstance(status, str):
        return None
    name = status.strip().lower()
    return name if name in _ZENDESK_SOLVED | _ZENDESK_REOPENED | {_ZENDESK_NEW} else None


def _zendesk_status(status: Any, ticket: Any, signed_at_ms: int) -> TicketStatus | None:
    """What the delivery says of the ticket's life. A status this door does not know
    (translated, a custom status's name) changes no link's life: the delivery is never
    refused for it, since Zendesk does not resend after a 4xx and its report would be lost."""
    if not isinstance(status, str) or not status.strip() or not isinstance(ticket, int):
        return None
    name = _known(status)
    if name is None:
        log.info(
            "zendesk:%s: status %r is not one this door knows: no link's life changes "
            "(send status_category with it)",
            ticket,
            status[:60],
        )
        return None
    if name == _ZENDESK_NEW:
        return None
    return TicketStatus(f"zendesk:{ticket}", name in _ZENDESK_SOLVED, signed_at_ms)


def read_posthog(data: Any, posthog_host: str) -> BugReport | Ignored:
    """A PostHog destination's body: a bug-report event written by its body template."""
    return _with_session(_from_template(_object(data, "the body")), posthog_host)


def _field_value(value: Any) -> Any:
    """A Jira field's value as text: select lists and similar carry it in ``value``."""
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else value


def _changed(data: Mapping[str, Any], field: str) -> bool:
    changelog = data.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    return isinstance(items, list) and any(
        isinstance(item, Mapping) and field in (item.get("fieldId"), item.get("field"))
        for item in items
    )


def _resolution(payload: Mapping[str, Any], issue: Mapping[str, Any]) -> TicketStatus | None:
    """An update that sets the resolution solves the issue; one that clears it reopens it."""
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and "resolution" in (item.get("fieldId"), item.get("field")):
            key = issue.get("key")
            name = key.strip().upper() if isinstance(key, str) else ""
            if not re.match(JIRA_ISSUE_PATTERN, name):
                raise InvalidEvent("issue.key: must be a Jira issue key such as BUG-42")
            return TicketStatus(
                f"jira:{name}",
                bool(item.get("to") or item.get("toString")),
                _jira_timestamp(payload.get("timestamp")),
            )
    return None


def _jira_timestamp(value: Any) -> int:
    # The only time Jira signs (it is in the body): it orders solving and reopening.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
        raise InvalidEvent(
            "timestamp: must be the webhook's time in milliseconds (it orders a resolution "
            "change against the issue's others)"
        )
    return value


def read_jira(
    data: Any, session_field: str, posthog_host: str
) -> tuple[BugReport | Ignored, TicketStatus | None]:
    """A Jira webhook: ``jira:issue_created``, or ``jira:issue_updated`` setting the session field
    (or the resolution, which solves or reopens the issue).

    Jira Automation's "Send web request" with "Issue data (Jira format)" sends the
    same ``issue`` without ``webhookEvent``, and "Issue data (Automation format)"
    the bare issue (``self``, ``id``, ``key``, ``fields``): both count as a creation.
    """
    payload = _object(data, "the body")
    if "issue" not in payload and "key" in payload and "fields" in payload:
        # Automation's "Issue data (Automation format)": the bare issue, a creation.
        payload = {"issue": payload}
    kind = payload.get("webhookEvent", "jira:issue_created")
    if kind not in ("jira:issue_created", "jira:issue_updated"):
        return Ignored(f"{kind} is not an issue creation or update"), None
    issue = _object(payload.get("issue"), "issue")
    fields = _object(issue.get("fields") or {}, "issue.fields")
    state = _resolution(payload, issue) if kind == "jira:issue_updated" else None
    if kind == "jira:issue_updated" and not _changed(payload, session_field):
        return Ignored(f"the update did not change {session_field}"), state
    return _jira_report(issue, fields, session_field, posthog_host), state


def _jira_report(
    issue: Mapping[str, Any], fields: Mapping[str, Any], session_field: str, posthog_host: str
) -> BugReport | Ignored:
    session = _field_value(fields.get(session_field))
    if not session:
        return Ignored(f"the issue has no session id in {session_field}")
    if not isinstance(session, str):
        raise InvalidEvent(f"issue.fields.{session_field}: must be text (a session id)")
    if not issue.get("key"):
        raise InvalidEvent("issue.key: is required")
    return _with_session({"session_id": session, "jira_issue": issue["key"]}, posthog_host)


def doors_on(config: Config) -> dict[str, bool]:
    """Each door's path, and whether its secret is configured."""
    intake = config.intake
    return {
        "/v1/bug-reports": bool(intake.tokens),
        "/webhooks/zendesk": intake.zendesk_webhook_secret is not None,
        "/webhooks/jira": intake.jira_webhook_secret is not None,
        "/webhooks/posthog": intake.posthog_webhook_secret is not None or bool(intake.tokens),
    }
