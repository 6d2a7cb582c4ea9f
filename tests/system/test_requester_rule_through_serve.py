"""The requester rule on a signed delivery through ``replay-attach serve``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import requests

from sandbox.app import Sandbox
from tests.conftest import RunningWorker, config_data
from tests.intake_server import IntakeServer, intake_config, zendesk_headers
from tests.integration.test_requester_rule import MALLORY, run, shares
from tests.scenarios import notes_on, wait_for
from worker.app import App


def test_a_signed_zendesk_delivery_for_another_persons_recording_posts_nothing(
    sandbox: Sandbox,
    redis_url: str,
    make_app: Callable[..., App],
    run_worker: Callable[..., RunningWorker],
    tmp_path: Path,
) -> None:
    """End to end: a real signed delivery through `serve`, the worker behind it."""
    sandbox.zendesk.add_ticket(707, requester_email=MALLORY)
    app = make_app(config_data(sandbox))
    body = json.dumps({"ticket_id": "707", "session_id": "victim-2", "status": "New"}).encode()
    with IntakeServer(intake_config(redis_url), tmp_path) as server:
        answer = requests.post(
            server.url + "/webhooks/zendesk", body, headers=zendesk_headers(body), timeout=10
        )
        assert answer.status_code == 202
        run(app, run_worker)
    wait_for(lambda: app.broker.do_qsize(app.queue.queue_name) == 0, 10, "the queue to drain")
    assert notes_on(sandbox, 707) == [] and shares(sandbox, "victim-2") == []
