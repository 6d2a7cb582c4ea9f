"""An overall deadline for each request, which a read timeout alone does not give.

A read timeout bounds each wait for data: a server that drips its answer a byte at
a time keeps a request alive for as long as it likes. Each ``JsonApi`` request is
therefore watched: past its deadline, its connection's socket is shut down, the
blocked read returns, and the request fails as a timeout.

One thread per process watches every request of the process. Deadlines come in
the order the requests start (they all add the same span to the time of their
start), so they are kept in a queue, and a request that ends takes its entry out;
the thread sleeps until the earliest deadline still watched, and starting a request
does not wake it.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections import deque

log = logging.getLogger(__name__)


class Watch:
    """One connection's socket, and whether its request ran past its deadline."""

    __slots__ = ("expired", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.expired = False


class _Entry:
    __slots__ = ("deadline", "live", "watch")

    def __init__(self, deadline: float, watch: Watch) -> None:
        self.deadline = deadline
        self.watch = watch
        self.live = True


class Deadlines:
    """Shuts down the socket of a watched request once its deadline has passed."""

    def __init__(self) -> None:
        self._entries: deque[_Entry] = deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: When the thread looks next (time.monotonic()); guarded by ``_changed``.
        self._next_look = 0.0
        #: The shortest span any request was given.
        self._idle_look = math.inf

    def start(self, watch: Watch, seconds: float) -> _Entry:
        """Watch the request about to be sent on ``watch``'s connection for ``seconds``."""
        watch.expired = False
        entry = _Entry(time.monotonic() + seconds, watch)
        with self._changed:
            self._entries.append(entry)
            self._idle_look = min(self._idle_look, seconds)
            # A forked worker process inherits the object but not the thread.
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="replay-attach request deadlines", daemon=True
                )
                self._thread.start()
            elif entry.deadline < self._next_look:
                # Rare: the thread plans to look later than this deadline.
                self._changed.notify()
        return entry

    def end(self, entry: _Entry) -> None:
        """The request is over, answered or not: stop watching it."""
        with self._changed:
            entry.live = False
            while self._entries and not self._entries[0].live:
                self._entries.popleft()

    def _run(self) -> None:
        with self._changed:
            while True:
                while self._entries and not self._entries[0].live:
                    self._entries.popleft()
                now = time.monotonic()
                if self._entries and self._entries[0].deadline <= now:
                    first = self._entries.popleft()
                    first.live = False
                    self._expire(first.watch)
                    continue
                # With nothing watched, look again after the shortest span a request is
                # given: any request started meanwhile is due no earlier, so starting one
                # never has to wake this thread.
                self._next_look = (
                    self._entries[0].deadline if self._entries else now + self._idle_look
                )
                self._changed.wait(self._next_look - now)

    @staticmethod
    def _expire(watch: Watch) -> None:
        watch.expired = True
        if watch.sock is None:
            return
        try:
            # The blocked read returns at once; the connection is not used again.
            watch.sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("shutting down a request past its deadline: %s", exc)


#: The process's watch over request deadlines.
deadlines = Deadlines()
