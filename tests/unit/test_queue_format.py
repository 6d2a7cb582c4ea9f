"""The queue's format has one owner, ``worker.jobs.messages``, and it is dramatiq's.

These need no Redis: a message is bytes, and the layout is names.
"""

from __future__ import annotations

import re
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from worker import keys
from worker.jobs import messages
from worker.jobs.messages import Job, decode, encode, new_job, stored

ROOT = Path(__file__).resolve().parents[2]

#: What only the owner of the format may spell: dramatiq's field and option names, the suffix
#: of a queue's hash, the acks set, the delay queue's suffix.
LAYOUT = re.compile(r"redis_message_id|message_timestamp|\.msgs\b|__acks__|\.DQ\b|\"message_id\"")


def test_only_the_queues_format_module_spells_dramatiqs_layout() -> None:
    owner = ROOT / "worker" / "jobs" / "messages.py"
    spelled = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("worker", "integrations", "sandbox")
        for path in sorted((ROOT / package).rglob("*"))
        if path.suffix in (".py", ".lua") and path != owner
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LAYOUT.search(line.split("#")[0])
    ]
    assert spelled == [], "the queue's format belongs in worker/jobs/messages.py"


def test_a_job_is_read_from_dramatiqs_message_and_written_back_to_the_same_bytes() -> None:
    broker = StubBroker()
    actor = dramatiq.actor(lambda e: None, actor_name=messages.ACTOR_NAME, broker=broker)
    message = actor.message({"session_id": "s", "zendesk_ticket": 7}).copy(
        options={keys.OPTION_ATTEMPTS: 2, keys.OPTION_DOOR: "/webhooks/zendesk"}
    )
    job = Job.from_fields(message.asdict())
    assert (job.job_id, job.attempts, job.door) == (message.message_id, 2, "/webhooks/zendesk")
    assert encode(job) == message.encode()
    assert decode(message.encode()) == job


def test_a_stored_copy_has_its_own_redis_id_and_keeps_the_job() -> None:
    job = new_job("q", {"session_id": "s", "zendesk_ticket": 7}, delivery_id="d-1")
    first, second = stored(job), stored(job)
    assert first.redis_id != second.redis_id and first.job_id == second.job_id == job.job_id
    assert decode(first.data).options == {
        keys.OPTION_DELIVERY_ID: "d-1",
        messages.REDIS_ID_OPTION: first.redis_id,
    }
    assert dramatiq.Message.decode(first.data).message_id == job.job_id


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"queue_name": "q"}', b"\xff"])
def test_what_is_not_a_message_is_refused_as_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)
