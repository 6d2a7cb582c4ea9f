"""Which Redis the queue, the ledger and the failed jobs live on, and the client for it."""

from __future__ import annotations

import os

import redis

from worker.config import Config
from worker.embedded_redis import EmbeddedRedisError, embedded_redis_url

#: redis-py's pool is bounded; many worker threads must not exhaust it.
REDIS_MAX_CONNECTIONS = 512

#: Set (to anything but empty or 0) where an embedded Redis would be a queue no one else sees,
#: such as a container: the container image sets it, so a missing REDIS_URL stops the command.
REQUIRE_REDIS_URL_ENV = "REPLAY_ATTACH_REQUIRE_REDIS_URL"


def resolve_redis_url(config: Config) -> str:
    """``broker.redis_url`` when set, else the embedded Redis under ``broker.data_dir``.

    ``EmbeddedRedisError`` when the embedded Redis is refused (``REQUIRE_REDIS_URL_ENV``).

    The embedded Redis is started (or joined) here, and this process stays
    one of its users until it exits.
    """
    if config.broker.redis_url is not None:
        return config.broker.redis_url.get_secret_value()
    if os.environ.get(REQUIRE_REDIS_URL_ENV, "") not in ("", "0"):
        raise EmbeddedRedisError(
            f"REDIS_URL is not set, and {REQUIRE_REDIS_URL_ENV} forbids the embedded Redis "
            "(in a container it would be a queue that no other process sees): set REDIS_URL"
        )
    return embedded_redis_url(config.broker.data_dir)


def redis_client(url: str) -> redis.Redis:
    """A client whose pool serves the worker threads and the broker's own consumers."""
    pool = redis.ConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        # Finds a connection broken by a Redis restart before using it.
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
