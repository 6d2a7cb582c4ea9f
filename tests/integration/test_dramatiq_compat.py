"""What ``worker/jobs/dramatiq_compat.py`` and ``worker/jobs/messages.py`` rely on in dramatiq.

Each test names the internal it checks, so that a dramatiq upgrade that
removes or changes one fails here, by name, before it fails in production.
"""

from __future__ import annotations

import importlib.metadata
import time

import dramatiq
import dramatiq.cli
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import dq_name
from dramatiq.errors import ActorNotFound
from packaging.requirements import Requirement

from worker import keys
from worker.attach.events import BugReport
from worker.jobs.dramatiq_compat import ReplayAttachBroker, failure_of
from worker.jobs.messages import ACTOR_NAME, acks_key, delay_queue_name, queue_keys
from worker.jobs.producer import encode_report

QUEUE = "compat-check"


def _relied_on(what: str) -> str:
    version = importlib.metadata.version("dramatiq")
    return f"dramatiq {version} changed {what}, which worker/jobs/dramatiq_compat.py relies on"


def test_the_installed_dramatiq_is_one_the_dependency_range_allows() -> None:
    requirements = [
        Requirement(line) for line in importlib.metadata.requires("replay-attach") or []
    ]
    (dramatiq_range,) = [r.specifier for r in requirements if r.name == "dramatiq"]
    assert importlib.metadata.version("dramatiq") in dramatiq_range


def test_the_redis_consumer_keeps_the_state_the_batched_fetch_reads(
    redis_client: redis.Redis,
) -> None:
    broker = RedisBroker(client=redis_client)
    assert isinstance(RedisBroker.__dict__.get("consumer_class"), property), _relied_on(
        "RedisBroker.consumer_class"
    )
    consumer = broker.consume(QUEUE, prefetch=4, timeout=100)
    try:
        assert type(consumer) is _RedisConsumer, _relied_on("RedisBroker.consume")
        assert consumer.message_cache == [], _relied_on("_RedisConsumer.message_cache")
        assert consumer.outstanding_message_count == 0, _relied_on(
            "_RedisConsumer.outstanding_message_count"
        )
        assert (consumer.prefetch, consumer.timeout, consumer.queue_name) == (4, 100, QUEUE), (
            _relied_on("_RedisConsumer's prefetch, timeout and queue_name")
        )
    finally:
        consumer.close()


def test_dramatiq_lays_out_a_queue_and_its_held_messages_as_worker_keys_says(
    redis_client: redis.Redis,
) -> None:
    """The producer and the retry promotion write these keys, the quarantine and
    ``status`` read them: dramatiq's own enqueue and fetch must use the same."""
    broker = RedisBroker(client=redis_client)
    actor = dramatiq.actor(lambda event: None, actor_name="compat", queue_name=QUEUE, broker=broker)
    message = broker.enqueue(actor.message({"session_id": "s"}))
    redis_id = message.options["redis_message_id"]
    queue_key, messages_key = queue_keys(QUEUE)
    assert redis_client.lrange(queue_key, 0, -1) == [redis_id.encode()], _relied_on("queue keys")
    assert redis_client.hget(messages_key, redis_id) == message.encode(), _relied_on("queue keys")

    consumer = broker.consume(QUEUE, prefetch=1, timeout=100)
    try:
        fetched = next(consumer)
        assert fetched is not None and fetched.message_id == message.message_id
        held = acks_key(broker.broker_id, QUEUE)
        assert redis_client.smembers(held) == {redis_id.encode()}, _relied_on("the __acks__ keys")
        assert redis_client.keys(acks_key("*", QUEUE)) == [held.encode()]
        # The quarantine sets a held message aside with the broker's nack command.
        broker.do_nack(QUEUE, redis_id)
        assert redis_client.smembers(held) == set(), _relied_on("the nack command")
        assert redis_client.hexists(messages_key.replace(QUEUE, QUEUE + ".XQ"), redis_id), (
            _relied_on("where the nack command keeps a message")
        )
    finally:
        consumer.close()


def test_the_replay_attach_broker_hands_out_its_own_consumer(redis_client: redis.Redis) -> None:
    broker = ReplayAttachBroker(client=redis_client, idle_poll_ms={QUEUE: 70})
    consumer = broker.consume(QUEUE, prefetch=4, timeout=1000)
    try:
        assert isinstance(consumer, _RedisConsumer) and type(consumer) is not _RedisConsumer
        assert consumer.timeout == 70 and consumer.fetch_batch == 2
    finally:
        consumer.close()


def test_the_delay_queue_is_named_as_dramatiq_names_it() -> None:
    for name in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ"):
        assert delay_queue_name(name) == dq_name(name), _relied_on("dq_name")


def test_dramatiqs_worker_command_takes_the_arguments_replay_attach_passes() -> None:
    parser = dramatiq.cli.make_argument_parser()
    args = parser.parse_args(
        [
            "worker.worker_process:broker",
            "--processes",
            "2",
            "--threads",
            "8",
            "--worker-shutdown-timeout",
            "105000",
        ]
    )
    assert (args.broker, args.processes, args.threads, args.worker_shutdown_timeout) == (
        "worker.worker_process:broker",
        2,
        8,
        105000,
    ), _relied_on("dramatiq.cli's arguments")
    assert callable(dramatiq.cli.main), _relied_on("dramatiq.cli.main")


def test_a_failed_message_keeps_the_exception_it_failed_with(redis_client: redis.Redis) -> None:
    broker = RedisBroker(client=redis_client)
    actor = dramatiq.actor(lambda event: None, actor_name="compat", queue_name=QUEUE, broker=broker)
    proxy = MessageProxy(actor.message({"session_id": "s"}))
    assert failure_of(proxy) is None
    error = ActorNotFound("elsewhere")
    proxy.stuff_exception(error)
    assert failure_of(proxy) is error, _relied_on("MessageProxy's stuffed exception")


def test_a_producers_message_is_one_dramatiq_decodes_and_encodes_to_the_same_bytes() -> None:
    # Producers write dramatiq's message layout without importing dramatiq.
    report = BugReport(session_id="compat-session", zendesk_ticket=7)
    encoded = encode_report(report, QUEUE, delivery_id="delivery-1")
    message = dramatiq.Message.decode(encoded.data)
    assert message.encode() == encoded.data, _relied_on("the JSON layout of Message.encode")
    assert message.queue_name == QUEUE
    assert message.actor_name == ACTOR_NAME
    assert message.args == (report.to_message(),)
    assert message.kwargs == {}
    assert message.message_id == encoded.job_id
    assert message.options == {
        "redis_message_id": encoded.redis_id,
        keys.OPTION_DELIVERY_ID: "delivery-1",
    }
    assert abs(message.message_timestamp - time.time() * 1000) < 60_000
