"""Revoking in process while a share of the same session is held or in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.scenarios import embed_token, notes_on
from tests.system.test_revoke import attach, live, revoked_notes
from worker import keys
from worker.app import App
from worker.jobs.producer import enqueue_bug_report


def test_a_revoke_that_cannot_have_the_session_says_so(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.attach import links as links_module
    from worker.attach.leases import LockBusy
    from worker.attach.revoke import revoke_link
    from worker.attach.services import build_services

    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="held", zendesk_ticket=101)
    monkeypatch.setattr(links_module, "REVOKE_WAIT_SECONDS", 0.3)
    redis_client.set(keys.MINT_LOCK_KEY.format(project=1, session="held"), "other", px=10_000)
    with pytest.raises(LockBusy):
        revoke_link("held", "test", "test", build_services(app.config, redis_client))
    assert revoked_notes(sandbox, 101) == []


def test_a_share_during_a_revocation_waits_and_gets_a_new_live_link(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race: a share landing between PostHog's disable and the record's "revoked"
    would leave a live token on a ticket beside a "revoked" note, never swept."""
    from worker.attach.links import Links
    from worker.attach.revoke import revoke_link
    from worker.attach.services import build_services

    app = make_app(config_data(sandbox))
    attach(app, sandbox, run_worker, session_id="racy", zendesk_ticket=101)
    old = embed_token(notes_on(sandbox, 101)[0]["html_body"])
    disabling = threading.Event()
    original = sandbox.posthog._dispatch

    def slow_disable(request: Any) -> Any:
        if request.method == "PATCH" and request.json == {"enabled": False}:
            disabling.set()
            time.sleep(1.5)
        return original(request)

    monkeypatch.setattr(sandbox.posthog, "_dispatch", slow_disable)
    services = build_services(app.config, redis_client)
    revoking = threading.Thread(target=revoke_link, args=("racy", "test", "test", services))
    revoking.start()
    assert disabling.wait(10)
    # Reported for another ticket while PostHog is disabling the link.
    enqueue_bug_report(session_id="racy", zendesk_ticket=102, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
    revoking.join(30)
    assert app.failed.all() == []
    assert not live(sandbox, old) and len(revoked_notes(sandbox, 101)) == 1
    new = embed_token(notes_on(sandbox, 102)[0]["html_body"])
    assert new != old and live(sandbox, new)
    # The live link is the one recorded as active, so its end will come.
    link = Links(redis_client, 1).get("racy")
    assert link is not None and link.token == new and not link.revoked
    assert set(link.tickets) == {"zendesk:102"}
