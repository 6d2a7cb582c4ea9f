"""Which Redis the queue, the ledger and the failed jobs live on, the client for it, and what its
not answering means (``store_calls``: the one place that judges it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

from worker.config import Config
from worker.embedded_redis import EmbeddedRedisError, embedded_redis_url
from worker.errors import StoreUnavailable

#: What a command says it could not reach: the configured URL (its password hidden), with the
#: variable that sets it, so that the operator knows what to fix.
REDIS_URL_ENV = "REDIS_URL"

#: Failures that mean "Redis is not there" (not a bug in a command).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)

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


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe for a message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def unreachable_message(config: Config, error: Exception) -> str:
    """One line saying which Redis did not answer and what to check; never the password."""
    if isinstance(error, redis.AuthenticationError):
        problem = "it refused the credentials in the URL"
    elif isinstance(error, redis.BusyLoadingError):
        problem = "it is still loading its data; try again in a moment"
    else:
        # redis-py's words name the host and port and the system's reason, never the password.
        problem = str(error).split("\n")[0].rstrip(".") or type(error).__name__
    if config.broker.redis_url is None:
        return (
            f"cannot reach the embedded Redis under {config.broker.data_dir}: {problem}; "
            f"set {REDIS_URL_ENV} to use a Redis server instead"
        )
    url = shown_url(config.broker.redis_url.get_secret_value())
    return (
        f"cannot reach Redis at {url} ({REDIS_URL_ENV}): {problem}; check that the server runs "
        f"and that {REDIS_URL_ENV} names its host, port, database and password"
    )


def store_unavailable(config: Config, error: BaseException) -> StoreUnavailable | None:
    """``error`` as ``StoreUnavailable`` when it means that Redis did not answer (``UNREACHABLE``),
    with ``unreachable_message``; None for any other error, a bug to see as it is."""
    if isinstance(error, UNREACHABLE):
        return StoreUnavailable(unreachable_message(config, error))
    return None


@contextmanager
def store_calls(config: Config) -> Iterator[None]:
    """Around calls to Redis: raises ``StoreUnavailable`` when Redis did not answer."""
    try:
        yield
    except Exception as exc:
        unavailable = store_unavailable(config, exc)
        if unavailable is None:
            raise
        raise unavailable from exc


def redis_client(url: str) -> redis.Redis:
    """A client whose pool serves the worker threads and the broker's own consumers."""
    pool = redis.ConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        # Finds a connection broken by a Redis restart before using it.
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
