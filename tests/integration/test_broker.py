"""The broker: per-queue idle polls, the batched enqueue against dramatiq's consumer,
and the consumer's batched fetches under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dramatiq.common import dq_name

from tests.conftest import config_data
from worker.app import App
from worker.attach.events import parse_event
from worker.jobs.messages import queue_keys
from worker.jobs.producer import enqueue_bug_report


def test_only_the_bug_report_queue_is_polled_at_the_idle_poll(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """A new event is picked up within ``worker.idle_poll_ms``; the delay queue (only
    dramatiq's backstop retries use it) is polled at dramatiq's slower worker timeout."""
    app = make_app(config_data(sandbox, worker__idle_poll_ms=70))
    queue = app.config.broker.queue
    main = app.broker.consume(queue, prefetch=1, timeout=1000)
    delayed = app.broker.consume(dq_name(queue), prefetch=1, timeout=1000)
    try:
        assert main.timeout == 70
        assert delayed.timeout == 1000
    finally:
        main.close()
        delayed.close()


def test_enqueue_many_writes_what_dramatiqs_enqueue_writes(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """enqueue_many writes the queue's Redis keys itself (two commands per batch instead of
    one per message); dramatiq's consumer must find its messages as it finds its own, in
    the order given, each under its own Redis id."""
    app = make_app(config_data(sandbox))
    first = enqueue_bug_report(session_id="one-by-one", zendesk_ticket=101, queue=app.queue)
    events = [parse_event({"session_id": f"many-{i}", "zendesk_ticket": 101}) for i in range(5)]
    assert app.queue.enqueue_many(iter(events), batch_size=2) == 5
    assert app.broker.do_qsize(app.config.broker.queue) == 6

    consumer = app.broker.consume(app.config.broker.queue, prefetch=10, timeout=100)
    try:
        received = []
        while len(received) < 6:
            message = next(consumer)
            if message is not None:
                received.append(message)
    finally:
        consumer.close()
    assert received[0].message_id == first
    assert [m.args[0]["session_id"] for m in received[1:]] == [f"many-{i}" for i in range(5)]
    assert all(m.actor_name == app.actor.actor_name for m in received)
    assert len({m.options["redis_message_id"] for m in received}) == 6


def _next_while_another_thread(consumer: Any, action: Callable[[], None]) -> tuple[Any, float]:
    """``next(consumer)`` while ``action`` (a worker thread's ack) runs 0.2 s later in
    another thread: the message and the seconds ``next`` took."""
    other = threading.Timer(0.2, action)
    other.start()
    started = time.monotonic()
    try:
        message = next(consumer)
    finally:
        other.join()
    return message, time.monotonic() - started


def test_a_full_consumer_waits_for_half_of_its_slots_then_fetches_them_at_once(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """While its prefetch is (nearly) full the consumer neither polls Redis nor fetches
    one message at a time: it sleeps until the worker threads have finished half of
    its slots' messages, woken by their acknowledgements, then fetches that many."""
    app = make_app(config_data(sandbox))
    queue = app.config.broker.queue
    waiting = queue_keys(queue)[0]
    events = [parse_event({"session_id": f"held-{i}", "zendesk_ticket": 101}) for i in range(20)]
    app.queue.enqueue_many(iter(events))
    consumer = app.broker.consume(queue, prefetch=8)
    consumer.timeout = 300  # the idle poll, in ms (worker.idle_poll_ms)
    try:
        held = [next(consumer) for _ in range(8)]
        assert None not in held and app.redis.llen(waiting) == 12
        assert consumer.fetch_batch == 4

        # Three slots free: below the batch, so no fetch, only a wait as long as an idle poll.
        for _ in range(3):
            consumer.ack(held.pop())
        started = time.monotonic()
        assert next(consumer) is None
        assert time.monotonic() - started >= 0.25
        assert app.redis.llen(waiting) == 12

        # A fourth acknowledgement, from a worker thread, wakes it well before its poll.
        consumer.timeout = 10_000
        fourth = held.pop()
        message, took = _next_while_another_thread(consumer, lambda: consumer.ack(fourth))
        assert message is not None
        assert took < 5
        assert app.redis.llen(waiting) == 8  # the four free slots filled in one fetch
        assert len(consumer.message_cache) == 3
    finally:
        consumer.close()


def test_an_acknowledgement_that_fails_still_frees_its_slot_and_wakes_the_consumer(
    sandbox: Any, make_app: Callable[..., App]
) -> None:
    """dramatiq forgets a message whose ack raised (it is redelivered later); the
    consumer waiting for that slot must not sleep through a whole idle poll."""
    app = make_app(config_data(sandbox))
    queue = app.config.broker.queue
    events = [parse_event({"session_id": f"lost-{i}", "zendesk_ticket": 101}) for i in range(12)]
    app.queue.enqueue_many(iter(events))
    consumer = app.broker.consume(queue, prefetch=2)  # a batch of one
    consumer.timeout = 10_000
    try:
        held = [next(consumer) for _ in range(2)]
        broken = held.pop()
        del broken.options["redis_message_id"]  # its ack cannot name it to Redis

        raised: list[BaseException] = []

        def fail_to_ack() -> None:
            try:
                consumer.ack(broken)
            except KeyError as exc:
                raised.append(exc)

        message, took = _next_while_another_thread(consumer, fail_to_ack)
        assert raised, "the acknowledgement was expected to fail"
        assert message is not None
        assert took < 5
    finally:
        consumer.close()
