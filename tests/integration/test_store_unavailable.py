"""Redis not answering is judged in one place: ``store_calls`` raises ``StoreUnavailable``
with one line naming the Redis (its password hidden), and leaves any other error as it is."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.intake_server import intake_config
from worker.config import Config
from worker.errors import ReplayAttachError, StoreUnavailable
from worker.jobs.redis_connection import store_calls, store_unavailable


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_redis_that_does_not_answer_is_store_unavailable_without_its_password() -> None:
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0"
    config = Config.model_validate(intake_config(url))
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    with pytest.raises(StoreUnavailable) as raised, store_calls(config):
        client.ping()
    message = str(raised.value)
    assert isinstance(raised.value, ReplayAttachError)
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    assert message.startswith("cannot reach Redis at redis://:***@127.0.0.1:"), message
    assert "s3cret" not in message and "\n" not in message


def test_any_other_redis_error_is_left_as_it_is(redis_url: str, redis_client: redis.Redis) -> None:
    config = Config.model_validate(intake_config(redis_url))
    with pytest.raises(redis.ResponseError), store_calls(config):
        redis_client.execute_command("NO-SUCH-COMMAND")
    assert store_unavailable(config, redis.ResponseError("WRONGTYPE")) is None
    assert isinstance(store_unavailable(config, redis.TimeoutError("late")), StoreUnavailable)
