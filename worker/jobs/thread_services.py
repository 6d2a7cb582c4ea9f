"""One set of clients per worker thread: built on a thread's first job, kept for the next."""

from __future__ import annotations

import threading
from functools import partial

import redis

from worker.attach.services import Services, build_services
from worker.config import Config
from worker.jobs.rate_limits import make_throttle


class ThreadServices:
    """One ``Services`` per thread, with its own Redis connection and HTTP connections."""

    def __init__(self, config: Config, client: redis.Redis) -> None:
        self._config = config
        self._client = client
        self._local = threading.local()

    def get(self) -> Services:
        services: Services | None = getattr(self._local, "services", None)
        if services is None:
            # The thread keeps one connection of the pool for itself rather
            # than taking one from the shared pool and handing it back for
            # every command: a job's two round trips run in its own thread.
            own = redis.Redis(
                connection_pool=self._client.connection_pool, single_connection_client=True
            )
            services = build_services(self._config, own, partial(make_throttle, own))
            self._local.services = services
        return services
