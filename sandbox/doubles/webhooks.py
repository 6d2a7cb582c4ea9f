"""`WebhookSender`: a double's outgoing webhooks, delivered the way Zendesk and Jira deliver them.

Deliveries leave from one background thread, so that creating a ticket in a double never waits
on the receiver, as an agent's click in Zendesk does not wait on a trigger's webhook. A delivery
is retried, with the same headers (its id included), on what a vendor takes for a passing
failure: no connection, no answer in time, or an answer of 408, 429 or 5xx. Any other answer
ends it: a 4xx says the receiver refused this delivery, and sending it again changes nothing.

Every attempt is recorded (`attempts`), so a test or the demo can see what the receiver was sent
and what it answered.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Waits before the second, third, fourth and fifth attempt: five attempts in all.
DEFAULT_BACKOFF: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)
#: Seconds to connect and to wait for the answer; Zendesk gives a webhook about 10 s.
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class WebhookAttempt:
    """One attempt at one delivery, as the receiver saw it and answered it."""

    url: str
    headers: dict[str, str]
    body: bytes
    #: 1 for the first attempt, 2 for the first retry, ...
    number: int
    #: The answer's status; None when there was no answer.
    status: int | None
    #: Why there was no answer (connection refused, timeout, ...); None when there was one.
    error: str | None
    time: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Whether a vendor would try this delivery again after this attempt."""
        if self.status is None:
            return True
        return self.status >= 500 or self.status in (408, 429)


@dataclass(frozen=True)
class _Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    retry_header: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook is not redirected (urllib would turn the POST into a GET without its body):
    a 3xx is the receiver's answer, and it ends the delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxy: the vendor posts straight to the receiver, whatever this machine's *_PROXY says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


class WebhookSender:
    """Posts queued webhooks, in order, from one daemon thread, retrying as the vendors do.

    The thread starts with the first `post` and ends with `stop`; a later `post` starts another,
    so a double that is stopped and started again (an outage) keeps sending.
    """

    def __init__(
        self,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = "webhooks",
    ) -> None:
        self.backoff = tuple(backoff)
        self.timeout = timeout
        self.name = name
        self._cond = threading.Condition()
        self._queue: deque[_Delivery] = deque()
        self._busy = 0  # deliveries taken off the queue and not finished
        self._attempts: list[WebhookAttempt] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def max_attempts(self) -> int:
        return len(self.backoff) + 1

    @property
    def attempts(self) -> list[WebhookAttempt]:
        """Every attempt so far, oldest first (a copy, safe to read while sending)."""
        with self._cond:
            return list(self._attempts)

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        retry_header: str | None = None,
    ) -> None:
        """Queue a POST of `body` to `url`. `retry_header`, if given, is added to retries with
        the number of the retry (Jira's X-Atlassian-Webhook-Retry)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must be http:// or https://, not {url!r}")
        with self._cond:
            self._queue.append(_Delivery(url, body, dict(headers), retry_header))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name=self.name, daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued delivery is over (delivered, refused or out of attempts);
        False if that takes longer than `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def reset_attempts(self) -> None:
        with self._cond:
            self._attempts.clear()

    def stop(self) -> None:
        """End the thread; queued deliveries are dropped and a retry's wait is cut short (call
        `wait_idle` first to let them finish). An attempt under way ends within `timeout`."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._stop = threading.Event()  # for the thread a later post() starts
            self._queue.clear()
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=self.timeout + 1)

    # ----------------------------------------------------------------- the thread

    def _run(self, stop: threading.Event) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or stop.is_set())
                if stop.is_set():
                    return
                delivery = self._queue.popleft()
                self._busy += 1
            try:
                self._deliver(delivery, stop)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, delivery: _Delivery, stop: threading.Event) -> None:
        for number in range(1, self.max_attempts + 1):
            attempt = self._attempt(delivery, number)
            with self._cond:
                self._attempts.append(attempt)
            if not attempt.retryable or number == self.max_attempts:
                return
            if stop.wait(self.backoff[number - 1]):
                return

    def _attempt(self, delivery: _Delivery, number: int) -> WebhookAttempt:
        headers = dict(delivery.headers)
        if delivery.retry_header and number > 1:
            headers[delivery.retry_header] = str(number - 1)
        request = urllib.request.Request(  # noqa: S310 (post() admits only http and https)
            delivery.url, data=delivery.body, headers=headers, method="POST"
        )
        status: int | None = None
        error: str | None = None
        started = time.time()
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as exc:  # any status >= 300, redirects included
            status = exc.code
            exc.close()
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, ...
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            error = f"{type(reason).__name__}: {reason}"
        return WebhookAttempt(
            url=delivery.url,
            headers=headers,
            body=delivery.body,
            number=number,
            status=status,
            error=error,
            time=started,
        )
