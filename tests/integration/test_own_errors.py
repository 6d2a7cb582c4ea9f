"""The worker's own reasons to wait are not posed as a vendor's failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from integrations.errors import IntegrationError
from tests.conftest import config_data
from worker.attach.events import parse_event
from worker.attach.services import build_services
from worker.attach.use_case import BUSY_RETRY_SECONDS, attach_replay
from worker.config import Config
from worker.errors import AttachLater

SESSION = "0192c0de-1234-7abc-8def-0123456789ab"


def test_a_session_another_worker_is_attaching_waits_as_the_worker_s_own_reason(
    sandbox: Any, make_config: Callable[..., Config], redis_client: redis.Redis
) -> None:
    services = build_services(make_config(config_data(sandbox)), redis_client)
    event = parse_event({"session_id": SESSION, "zendesk_ticket": 101})
    with (
        services.ledger.attachment(event.target, SESSION),
        pytest.raises(AttachLater) as raised,
    ):
        attach_replay(event, services)
    assert not isinstance(raised.value, IntegrationError)
    assert raised.value.retry_after == BUSY_RETRY_SECONDS
    assert (
        raised.value.reason
        == f"another worker is attaching session {SESSION} to {event.target_label}"
    )
