"""Zendesk: the replay link as an internal note on a ticket, plus a tag.

The two writes of every job are plain JSON requests sent through
``integrations.http.JsonApi``:

* ``PUT /api/v2/tickets/{id}.json`` with ``{"ticket": {"comment": {...}}}``
  adds the note; ``public`` is always sent, because Zendesk makes a comment
  public when it is left out;
* ``PUT /api/v2/tickets/{id}/tags.json`` adds the tag and keeps the others
  (setting ``tags`` in the ticket update would replace them all, and
  ``additional_tags`` is documented for bulk updates only).

zenpy turns every answer into a graph of objects (the whole ticket and its
audit), CPU spent on objects nothing reads. It is used where it earns its
keep: reading a ticket's comments page by page (the duplicate check after an
uncertain write) and the credentials check. Three of its habits are switched
off there, because each can post twice or hang a worker:

* its own session mounts a urllib3 ``Retry(total=3)`` that re-sends a PUT after
  a 503 or a read timeout: we hand it our session, which has no retries;
* it sleeps ``Retry-After`` and retries a 429 forever (and crashes on the HTTP
  date form): our session raises before zenpy sees any error status;
* it caches tickets for 30 s: ``disable_cache=True``.

zenpy also hard-codes ``https://{subdomain}.zendesk.com``; our session sends its
requests to the configured base URL instead, so ``http://127.0.0.1:PORT`` works
without zenpy's process-wide ``ZENPY_FORCE_*`` environment variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.auth import HTTPBasicAuth
from zenpy import Zenpy
from zenpy.lib.exception import ZenpyException

from integrations.errors import (
    IntegrationError,
    PermanentFailure,
    RetryLater,
    status_failure,
    transport_failure,
)
from integrations.http import (
    ErrorStatus,
    JsonApi,
    RedirectRefused,
    Throttle,
    Timeouts,
    configure_session,
    is_success,
)
from integrations.retries import (
    call_with_retries,
)

SYSTEM = "Zendesk"
T = TypeVar("T")


@dataclass(frozen=True)
class ZendeskNote:
    html_body: str
    plain_body: str
    public: bool = False


class _RebasedSession(requests.Session):
    """Sends zenpy's https://{sub}.zendesk.com URLs to the configured base URL."""

    def __init__(self, base_url: str, throttle: Throttle | None) -> None:
        super().__init__()
        parts = urlsplit(base_url)
        self._scheme, self._netloc = parts.scheme, parts.netloc
        configure_session(self, throttle, system=SYSTEM)

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        rebased = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, ""))
        response = super().request(method, rebased, *args, **kwargs)
        if not is_success(response):
            raise ErrorStatus(response)
        return response


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body.get("error", "")), str(body.get("description", ""))]
    details = body.get("details")
    if isinstance(details, dict):
        for items in details.values():
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and "description" in item:
                    parts.append(str(item["description"]))
    return " ".join(part for part in parts if part)[:300]


class ZendeskTickets:
    """Writes to Zendesk tickets. One instance per thread (requests sessions are not shared)."""

    def __init__(
        self,
        url: str,
        email: str,
        api_token: str,
        timeouts: Timeouts,
        throttle: Throttle | None = None,
    ) -> None:
        parts = urlsplit(url)
        host = parts.hostname or "zendesk"
        subdomain, _, domain = host.partition(".")
        self._api = JsonApi(
            f"{parts.scheme}://{parts.netloc}/api/v2",
            timeouts,
            auth=HTTPBasicAuth(f"{email}/token", api_token),
            throttle=throttle,
            system=SYSTEM,
        )
        self._session = _RebasedSession(url, throttle)
        self._client = Zenpy(
            subdomain=subdomain,
            domain=domain or "zendesk.com",
            email=email,
            token=api_token,
            session=self._session,
            timeout=timeouts,
            disable_cache=True,
        )

    def _failure(
        self, response: requests.Response, ticket_id: int, *, is_write: bool
    ) -> IntegrationError:
        status = response.status_code
        text = _error_text(response)
        if status == 401:
            reason = "Zendesk rejected the email or API token (401)"
        elif status == 403:
            reason = f"Zendesk refused access to ticket {ticket_id} (403): check the agent's role"
        elif status == 404:
            reason = f"Zendesk ticket {ticket_id} does not exist (404)"
        elif status == 422 and "closed" in text.lower():
            reason = f"Zendesk ticket {ticket_id} is closed and can no longer be updated (422)"
        elif status == 422:
            reason = f"Zendesk refused to update ticket {ticket_id} (422): {text or 'invalid'}"
        elif status == 409:
            reason = f"Zendesk reported an update conflict on ticket {ticket_id} (409)"
        elif status == 429:
            reason = "Zendesk is rate limiting the account (429)"
        elif status >= 500:
            reason = f"Zendesk had a server error ({status})"
        else:
            reason = f"Zendesk refused the request on ticket {ticket_id} ({status}): {text}"
        return status_failure(SYSTEM, response, reason, is_write=is_write)

    def _call(self, what: str, ticket_id: int, call: Callable[[], T], *, is_write: bool) -> T:
        def attempt() -> T:
            try:
                return call()
            except (ErrorStatus, RedirectRefused) as exc:
                raise self._failure(exc.response, ticket_id, is_write=is_write) from None
            except requests.RequestException as exc:
                raise transport_failure(SYSTEM, what, exc, is_write=is_write) from None
            except ZenpyException as exc:
                raise RetryLater(
                    SYSTEM, f"Zendesk gave an unexpected answer ({type(exc).__name__})"
                ) from None

        return call_with_retries(attempt, repeatable=not is_write)

    def _put(self, path: str, payload: dict[str, Any]) -> None:
        """PUT ``payload`` to ``/api/v2/{path}``; any answer but 2xx raises ``ErrorStatus``."""
        response = self._api.send("PUT", f"{self._api.base_url}/{path}", payload)
        if not is_success(response):
            raise ErrorStatus(response)

    def post_note(self, ticket_id: int, note: ZendeskNote) -> None:
        """Add one comment (internal unless ``note.public``). Not safe to repeat."""
        comment = {"html_body": note.html_body, "body": note.plain_body, "public": note.public}
        self._call(
            f"add a note to ticket {ticket_id}",
            ticket_id,
            lambda: self._put(f"tickets/{ticket_id}.json", {"ticket": {"comment": comment}}),
            is_write=True,
        )

    def add_tags(self, ticket_id: int, tags: list[str]) -> None:
        """Add tags, keeping the ticket's others (PUT .../tags.json adds; never replaces)."""
        self._call(
            f"tag ticket {ticket_id}",
            ticket_id,
            lambda: self._put(f"tickets/{ticket_id}/tags.json", {"tags": tags}),
            # Adding a tag twice is harmless, so it may be repeated in process.
            is_write=False,
        )

    def requester_email(self, ticket_id: int) -> str | None:
        """The email of the ticket's requester as Zendesk knows it (None: the user has none).

        One request: the ticket with its users sideloaded (``include=users``).
        """

        def read() -> str | None:
            url = f"{self._api.base_url}/tickets/{ticket_id}.json?include=users"
            response = self._api.send("GET", url)
            if not is_success(response):
                raise ErrorStatus(response)
            body = response.json()
            ticket = body.get("ticket") if isinstance(body, dict) else None
            requester = ticket.get("requester_id") if isinstance(ticket, dict) else None
            users = body.get("users") if isinstance(body, dict) else None
            for user in users if isinstance(users, list) else []:
                if isinstance(user, dict) and requester is not None and user.get("id") == requester:
                    email = user.get("email")
                    return email if isinstance(email, str) and email.strip() else None
            return None

        return self._call(f"read ticket {ticket_id}'s requester", ticket_id, read, is_write=False)

    def has_comment_containing(self, ticket_id: int, marker: str) -> bool:
        """Whether any comment on the ticket contains ``marker`` (reads every page)."""

        def scan() -> bool:
            for comment in self._client.tickets.comments(ticket=ticket_id):
                for text in (comment.body, comment.html_body, comment.plain_body):
                    if text and marker in text:
                        return True
            return False

        return self._call(f"read ticket {ticket_id}'s comments", ticket_id, scan, is_write=False)

    def check(self) -> str:
        def me() -> Any:
            return self._client.users.me()

        user = self._call("check the credentials", 0, me, is_write=False)
        email = getattr(user, "email", None)
        role = getattr(user, "role", None)
        if not email or role in (None, "end-user"):
            raise PermanentFailure(
                SYSTEM, "the credentials authenticate, but not as an agent (role end-user)"
            )
        return f"authenticated as {email} ({role})"
