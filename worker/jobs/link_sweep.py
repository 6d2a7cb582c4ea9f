"""Links that end by themselves: after their time to live, or once their ticket is solved.

Every worker process runs a thread that, every ``privacy.check_every_seconds``,
tries to take the fleet's sweep lock; the one that gets it revokes the links
that are due (``worker.attach.revoke``): those shared more than
``privacy.link_ttl_days`` ago, and those of tickets solved more than
``privacy.revoke_after_solved_days`` ago (the intake records solved and
reopened tickets). A revocation that fails is logged and tried again at the
next sweep: a link stays due until its revocation is done.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import dramatiq
import redis
from dramatiq.middleware import Middleware

from integrations.errors import IntegrationError
from worker import keys
from worker.attach.leases import LockBusy
from worker.attach.revoke import revoke_link
from worker.attach.services import Services, build_services
from worker.config import Config
from worker.metrics import JOBS, system_of

log = logging.getLogger(__name__)

TTL_BY = "time to live"
SOLVED_BY = "ticket solved"


def sweep(services: Services, now: float | None = None) -> int:
    """Revoke every link that is due; return how many were revoked in this sweep."""
    privacy = services.config.privacy
    links = services.links
    now = time.time() if now is None else now
    due: list[tuple[str, str, str]] = []
    if privacy.link_ttl_days is not None:
        reason = f"its time to live ({privacy.link_ttl_days:g} days) is over"
        before = now - privacy.link_ttl_days * 86400
        due += [(s, reason, TTL_BY) for s in links.sessions(shared_before=before)]
    solved = links.solved_due(now)
    for target in solved:
        due += [(s, "the ticket was solved", SOLVED_BY) for s in links.sessions(target=target)]
    revoked, failed = 0, False
    for session, reason, by in due:
        try:
            done = revoke_link(session, reason, by, services)
            if done is not None:
                revoked += 1
                for target in done.told:
                    JOBS.labels(system_of(target), "revoked").inc()
        except LockBusy:
            failed = True  # another process is on it; seen again at the next sweep
        except IntegrationError as exc:
            failed = True
            log.warning("could not revoke the link of %s (%s): %s", session, by, exc.reason)
    if not failed:
        for target in solved:
            links.forget_solved(target)
    return revoked


class LinkSweep(Middleware):
    """Runs the sweeping thread in every worker process; one process sweeps at a time."""

    def __init__(self, config: Config, client: redis.Redis) -> None:
        self._config = config
        self._client = client
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="replay-attach link sweep", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        every = self._config.privacy.check_every_seconds
        services = build_services(self._config, self._client)
        while not self._stop.wait(every):
            token = uuid.uuid4().hex
            try:
                # Held for most of an interval: another process sweeps at the next one.
                if not self._client.set(keys.SWEEP_LOCK_KEY, token, nx=True, px=int(every * 900)):
                    continue
                revoked = sweep(services)
                if revoked:
                    log.info("revoked %d link(s) that were due to end", revoked)
            except redis.RedisError as exc:
                log.warning("could not look for links due to end: %s", exc)
            except Exception:  # a bug must not end the thread: links would never end
                log.exception("the link sweep failed")
