"""The attach job's use of the ledger: its Redis round trips, and the writes reserved as pending."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import config_data
from tests.scenarios import notes_on
from worker.attach import ledger as ledger_module
from worker.attach.events import parse_event
from worker.attach.services import build_services
from worker.attach.use_case import attach_replay
from worker.config import Config

SESSION = "0192c0de-1234-7abc-8def-0123456789ab"


def counting_client(redis_url: str) -> tuple[redis.Redis, list[int]]:
    """A real client whose connections (TCP or Unix socket) count the commands the calling
    thread sends (not the lease keeper's renewals, which may land at any moment)."""
    sent = [0]
    counted = threading.get_ident()
    base: type[redis.connection.AbstractConnection] = redis.ConnectionPool.from_url(
        redis_url
    ).connection_class

    class Counting(base):  # type: ignore[valid-type,misc]
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if threading.get_ident() == counted:
                sent[0] += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool.from_url(redis_url, connection_class=Counting)
    return redis.Redis(connection_pool=pool), sent


@pytest.mark.parametrize("target", ["zendesk", "jira"])
def test_a_new_attachment_costs_two_redis_round_trips(
    sandbox: Any,
    make_config: Callable[..., Config],
    redis_url: str,
    redis_client: redis.Redis,  # flushes the test database
    target: str,
) -> None:
    """Open (lock, read, mint lock, "pending" for the write not safe to repeat), the link's
    record (before any ticket shows it: no link escapes its end) and the end: every extra
    round trip costs each job about as much CPU as an HTTP request."""
    client, sent = counting_client(redis_url)
    services = build_services(make_config(config_data(sandbox)), client)
    events = [
        parse_event(
            {"session_id": f"{SESSION[:-2]}{i:02d}"}
            | ({"zendesk_ticket": 101} if target == "zendesk" else {"jira_issue": "BUG-1"})
        )
        for i in range(3)
    ]
    attach_replay(events[0], services)  # scripts loaded, connections opened
    for event in events[1:]:
        sent[0] = 0
        result = attach_replay(event, services)
        assert len(result.written) == 2
        assert sent[0] == 3
    client.close()


@pytest.mark.parametrize(
    ("event", "failing_call"),
    [
        ({"zendesk_ticket": 101}, ("posthog", "PATCH", r"/sharing$")),
        ({"jira_issue": "BUG-1"}, ("posthog", "PATCH", r"/sharing$")),
        ({"jira_issue": "BUG-1"}, ("jira", "POST", r"/remotelink$")),
    ],
    ids=["zendesk: share fails", "jira: share fails", "jira: remote link fails"],
)
def test_a_write_reserved_but_never_attempted_is_not_looked_for_later(
    sandbox: Any,
    make_config: Callable[..., Config],
    redis_url: str,
    redis_client: redis.Redis,  # flushes the test database
    event: dict[str, Any],
    failing_call: tuple[str, str, str],
) -> None:
    """The note or comment is marked "pending" when the job opens; a step before it that
    fails clears that mark, so the next attempt writes at once instead of reading first."""
    from integrations.errors import RetryLater

    client, sent = counting_client(redis_url)
    services = build_services(make_config(config_data(sandbox)), client)
    attach_replay(parse_event({"session_id": "warm-up", **event}), services)  # scripts loaded
    for double in sandbox.vendors:
        double.reset_requests()
    parsed = parse_event({"session_id": SESSION, **event})
    vendor, method, path = failing_call
    getattr(sandbox, vendor).fail_next("5xx", method=method, path_regex=path, count=3)
    sent[0] = 0
    with pytest.raises(RetryLater):
        attach_replay(parsed, services)
    # The open, the link's record once it is minted, then one script that clears the
    # reservation while it releases the locks: once the attach lock is gone, another
    # worker's reservation may stand in its place.
    assert sent[0] == (3 if failing_call[0] == "jira" else 2)
    record = services.ledger.read(parsed.target, SESSION)
    assert "note" not in record and "comment" not in record
    assert redis_client.keys("replay-attach:lock:*") == []

    result = attach_replay(parsed, services)
    assert result.written == (
        ["note", "tag"] if "zendesk_ticket" in event else ["remote_link", "comment"]
    )
    # No duplicate check: nothing was ever sent that could have landed.
    assert sandbox.zendesk.calls("GET") == [] and sandbox.jira.calls("GET") == []


def test_a_worker_killed_after_opening_leaves_the_write_to_be_looked_for(
    sandbox: Any, make_config: Callable[..., Config], redis_client: redis.Redis
) -> None:
    """A reservation left behind (the worker died between opening and writing) is an
    uncertain outcome: the redo reads the ticket once, finds nothing, and writes once."""
    services = build_services(make_config(config_data(sandbox)), redis_client)
    parsed = parse_event({"session_id": SESSION, "zendesk_ticket": 101})
    with services.ledger.attachment(parsed.target, SESSION, ("note",)) as opened:
        assert opened.record == {} and opened.reserved == {"note"}
        # Killed here: nothing of this process runs again, not even the block's
        # clean-up, and its locks' leases lapse.
        opened._unattempted = []
        for lease in (opened._attach, opened._mint):
            ledger_module.leases.drop(lease)
            redis_client.delete(lease.name)
        opened._attach_held = opened._mint_held = False
    assert services.ledger.read(parsed.target, SESSION)["note"].startswith("pending:")

    assert attach_replay(parsed, services).written == ["note", "tag"]
    assert len(sandbox.zendesk.calls("GET", r"/tickets/101/comments")) == 1
    assert len(notes_on(sandbox, 101)) == 1
