"""A sweep that cannot revoke a link whose time is up tries again at the next one."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.scenarios import wait_for
from tests.system.test_link_ends import SECONDS, disables, revoked_notes, token_on
from worker.app import App
from worker.jobs.producer import enqueue_bug_report


def test_a_sweep_that_cannot_revoke_tries_again_at_the_next_one(
    sandbox: Sandbox,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
) -> None:
    app = make_app(
        config_data(sandbox, privacy__link_ttl_days=1 * SECONDS, privacy__check_every_seconds=0.3)
    )
    # PostHog's token rotation down for the first sweeps (each tries 3 times in process).
    sandbox.posthog.fail_next("5xx", count=7, method="POST", path_regex=r"/sharing/refresh/?$")
    enqueue_bug_report(session_id="swept-late", zendesk_ticket=101, queue=app.queue)
    with run_worker(app) as worker:
        worker.drain()
        wait_for(lambda: bool(revoked_notes(sandbox, 101)), 30, "the link to end")
    rotations = [c for c in sandbox.posthog.sharing_calls("swept-late") if c.method == "POST"]
    assert [c.status for c in rotations][:7] == [503] * 7 and rotations[-1].status == 200
    assert len(revoked_notes(sandbox, 101)) == 1 and disables(sandbox, "swept-late") >= 1
    assert not sandbox.posthog.is_live(token_on(sandbox, 101))
