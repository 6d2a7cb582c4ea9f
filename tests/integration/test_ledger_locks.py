"""The ledger's locks against real Redis: leases renewed while held, released with the last save,
and the mint lock shared by the tickets of one session."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.scenarios import (
    SESSION,
    wait_for,
)
from worker import keys
from worker.attach import leases, ledger
from worker.attach.leases import LockBusy
from worker.attach.ledger import Ledger


def test_a_held_lock_outlives_its_lease_and_is_free_once_released(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leases that let a killed worker's tickets be redone within seconds must not let a
    slow but live holder lose its lock (a second writer would then post twice)."""
    monkeypatch.setattr(leases, "LOCK_LEASE_SECONDS", 0.5)
    monkeypatch.setattr(leases, "LOCK_RENEW_SECONDS", 0.1)
    # A fresh renewing thread, so that it runs at the shortened interval.
    monkeypatch.setattr(ledger, "leases", leases.LeaseKeeper())
    holder, rival = Ledger(redis_client, 1), Ledger(redis_client, 1)
    refused = 0
    with holder.attachment("zendesk:101", SESSION) as held:
        # A new pair takes the session's mint lock along with its own.
        assert held.mint_lock_held
        held_until = time.monotonic() + 4 * leases.LOCK_LEASE_SECONDS
        while time.monotonic() < held_until:
            with pytest.raises(LockBusy), rival.attachment("zendesk:101", SESSION):
                pass
            refused += 1
            time.sleep(0.1)
        # The other ticket's job for the same session waits for the mint lock.
        with rival.attachment("zendesk:102", SESSION) as other:
            assert not other.mint_lock_held
    assert refused >= 10
    with rival.attachment("zendesk:101", SESSION) as later:
        assert later.mint_lock_held
    assert redis_client.keys("replay-attach:lock:*") == []


def test_a_lease_taken_over_meanwhile_is_given_up_not_renewed(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A holder whose lease lapsed (Redis away for a whole lease) and was taken by another
    worker must stop renewing it: renewing blindly would extend the other worker's lock."""
    monkeypatch.setattr(leases, "LOCK_LEASE_SECONDS", 1.0)
    monkeypatch.setattr(leases, "LOCK_RENEW_SECONDS", 0.1)
    monkeypatch.setattr(ledger, "leases", leases.LeaseKeeper())
    lock_key = "replay-attach:lock:attach:zendesk:101:" + SESSION
    with Ledger(redis_client, 1).attachment("zendesk:101", SESSION) as held:
        redis_client.set(lock_key, "another-workers-token", px=300)
        with caplog.at_level("WARNING", logger="worker.attach.leases"):
            wait_for(lambda: "lost the lock" in caplog.text, 5, "the keeper to give the lease up")
        # The other worker's lock kept its own TTL and lapsed; nothing renewed it.
        wait_for(lambda: redis_client.get(lock_key) is None, 5, "the other lock to lapse")
        assert held.record == {}
    # Releasing at the end did not delete anything that was not ours.
    assert redis_client.keys("replay-attach:lock:*") == []


def test_a_save_sets_clears_and_releases_only_its_own_locks_in_one_go(
    redis_client: redis.Redis,
) -> None:
    ledger_ = Ledger(redis_client, 1)
    record_key = ledger_.key("zendesk:101", SESSION)
    attach_key = keys.ATTACH_LOCK_KEY.format(target="zendesk:101", session=SESSION)
    mint_key = keys.MINT_LOCK_KEY.format(project=1, session=SESSION)
    with ledger_.attachment("zendesk:101", SESSION) as attachment:
        assert attachment.mint(lambda _revoked: "token") == "token"
        assert attachment.mint_lock_due
        attachment.save({"link": "https://l", "note": "pending:1"})
        # The mint lock went with that write; the attach lock is still held.
        assert redis_client.get(mint_key) is None and redis_client.get(attach_key)
        assert 0 < redis_client.ttl(record_key) <= ledger.LEDGER_TTL_SECONDS
        # Someone else's lock under the same name is never released by this holder.
        redis_client.set(attach_key, "another-workers-token")
        attachment.save({"tag": "done:2"}, clear=("note",), finished=True)
        assert redis_client.get(attach_key) == b"another-workers-token"
    assert ledger_.read("zendesk:101", SESSION) == {"link": "https://l", "tag": "done:2"}


def test_opening_reserves_absent_writes_and_the_end_clears_those_never_attempted(
    redis_client: redis.Redis,
) -> None:
    ledger_ = Ledger(redis_client, 1)
    record_key = ledger_.key("jira:BUG-1", SESSION)
    redis_client.hset(record_key, "remote_link", "done:1")
    with ledger_.attachment("jira:BUG-1", SESSION, ("remote_link", "comment")) as opened:
        # The record as it was; only the absent field was reserved, in Redis too.
        assert opened.record == {"remote_link": "done:1"}
        assert opened.reserved == {"comment"}
        stored = ledger_.read("jira:BUG-1", SESSION)
        assert stored["remote_link"] == "done:1" and stored["comment"].startswith("pending:")
        assert 0 < redis_client.ttl(record_key) <= ledger.LEDGER_TTL_SECONDS
    # Never attempted: cleared with the lock release.
    assert ledger_.read("jira:BUG-1", SESSION) == {"remote_link": "done:1"}
    assert redis_client.keys("replay-attach:lock:*") == []

    with pytest.raises(RuntimeError), ledger_.attachment("jira:BUG-1", SESSION, ("comment",)) as a:
        a.attempt("comment")
        raise RuntimeError("the comment's answer never came")
    # Attempted, outcome unknown: it stays pending for the next attempt to look for.
    assert ledger_.read("jira:BUG-1", SESSION)["comment"].startswith("pending:")
    assert redis_client.keys("replay-attach:lock:*") == []


def test_a_second_ticket_waits_for_the_sessions_mint_and_the_lock_goes_with_the_next_write(
    redis_client: redis.Redis,
) -> None:
    """Two tickets for one session: the second mints only after the first's mint is written
    (PostHog expires one of two tokens minted at once), and both locks end up released."""
    first, second = Ledger(redis_client, 1), Ledger(redis_client, 1)
    order: list[str] = []
    with first.attachment("zendesk:101", SESSION) as a:
        assert a.mint_lock_held
        assert a.mint(lambda _revoked: "token") == "token"
        assert a.mint_lock_due
        with second.attachment("jira:BUG-1", SESSION) as b:
            assert not b.mint_lock_held
            waiter = threading.Thread(
                target=lambda: order.append(b.mint(lambda _revoked: "second"))
            )
            waiter.start()
            time.sleep(0.3)
            order.append("first still writing")
            a.save({"link": "https://ph.test/embedded/token"})  # releases the mint lock
            waiter.join(timeout=5)
            assert not waiter.is_alive()
            b.save({"link": "https://ph.test/embedded/token"}, finished=True)
        a.save({"note": first.done()}, finished=True)
    assert order == ["first still writing", "second"]
    assert redis_client.keys("replay-attach:lock:*") == []
    assert first.read("zendesk:101", SESSION)["note"].startswith("done:")
