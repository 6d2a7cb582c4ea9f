"""How a double misbehaves on purpose: latency, scripted and random faults, a rate limit.

`FaultInjection` is one half of `Double` (see base.py); the HTTP server asks it, per request,
which fault to act out (see server.py).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

# Every fault the doubles can inject. "rate_limited" is not injectable: it is what a request
# refused by `rate_limit_per_minute` is recorded with.
# "redirect" answers 301 to the same path on https, as a load balancer in front of an API does
# for a client configured with http://.
FAULT_KINDS: tuple[str, ...] = (
    "5xx",
    "429",
    "reset",
    "lost_response",
    "slow",
    "500",
    "redirect",
)
# Random faults default to the ones that stay fast and transient: "slow" would stall a
# benchmark for `slow_seconds` per hit, and "redirect" is a configuration error.
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("5xx", "429", "reset", "lost_response")
RATE_LIMITED = "rate_limited"


@dataclass
class _ScriptedFault:
    kind: str
    remaining: int
    method: str | None
    path_regex: re.Pattern[str] | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path_regex is None or self.path_regex.search(path) is not None


def _check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    return kind


class FaultInjection:
    """Latency, faults and the rate limit of a `Double`, which mixes this class in.

    `_lock` is the double's one lock (set by `Double` before this initialiser runs): handler
    threads and the test thread all touch the fault configuration and the RNG.
    """

    _lock: threading.Lock

    def __init__(self) -> None:
        super().__init__()
        self.latency: float = 0.0
        self.slow_seconds: float = 5.0
        self.rate_limit_per_minute: int | None = None
        self.throttled_count = 0
        self._window: deque[float] = deque()
        self._fault_rate = 0.0
        self._fault_kinds: list[str] = list(DEFAULT_FAULT_KINDS)
        self._rng = random.Random()
        self._scripted: list[_ScriptedFault] = []

    @property
    def fault_rate(self) -> float:
        return self._fault_rate

    @fault_rate.setter
    def fault_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        with self._lock:
            self._fault_rate = float(rate)

    @property
    def fault_kinds(self) -> list[str]:
        with self._lock:
            return list(self._fault_kinds)

    @fault_kinds.setter
    def fault_kinds(self, kinds: Iterable[str]) -> None:
        checked = [_check_kind(kind) for kind in kinds]
        with self._lock:
            self._fault_kinds = checked

    def seed(self, n: int | None) -> None:
        """Make random faults reproducible (for a given request order)."""
        with self._lock:
            self._rng.seed(n)

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        method: str | None = None,
        path_regex: str | None = None,
    ) -> None:
        """The next `count` requests matching `method` / `path_regex` (re.search) get `kind`."""
        fault = _ScriptedFault(
            kind=_check_kind(kind),
            remaining=count,
            method=method.upper() if method else None,
            path_regex=re.compile(path_regex) if path_regex else None,
        )
        with self._lock:
            self._scripted.append(fault)

    def clear_faults(self) -> None:
        """Drop scripted faults and switch random faults and the rate limit off."""
        with self._lock:
            self._scripted.clear()
            self._fault_rate = 0.0
            self.rate_limit_per_minute = None
            self._window.clear()

    def _decide_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            # Scripted faults first: a test that asks for one must get it deterministically.
            for index, scripted in enumerate(self._scripted):
                if scripted.matches(method, path):
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        del self._scripted[index]
                    return scripted.kind
            limit = self.rate_limit_per_minute
            if limit is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 60.0:
                    self._window.popleft()
                # Only admitted requests fill the window, so a client that backs off recovers.
                if len(self._window) >= limit:
                    self.throttled_count += 1
                    return RATE_LIMITED
                self._window.append(now)
            if self._fault_rate > 0 and self._fault_kinds:
                if self._rng.random() < self._fault_rate:
                    return self._rng.choice(self._fault_kinds)
        return None
