"""The queue's format, owned here: dramatiq's message JSON and its keys in Redis.

replay-attach writes and reads dramatiq's queue itself in several places (producers and the
intake enqueue without dramatiq, retries are promoted by a script, ``status`` and the metrics
read the queue, the quarantine finds held messages), so the layout those places share is
spelt once, here, and nowhere else:

* a message is the JSON object dramatiq's default encoder writes for a ``dramatiq.Message``
  (its fields in their order, no spaces); its ``message_id`` is the job id, and
  ``options["redis_message_id"]`` the id it is stored under;
* a queue is a list of those Redis ids and a hash of their data (``queue_keys``); each worker
  process holds the messages it fetched in a set (``acks_key``); dramatiq's delayed messages
  go to a queue of their own (``delay_queue_name``).

The job runner sees a message as a ``Job``, a plain value with no dramatiq in it.
``tests/integration/test_dramatiq_compat.py`` checks all of this against the installed
dramatiq, byte for byte, so that an upgrade which changes the format fails there.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from worker import keys

#: Prefix of dramatiq's own keys (RedisBroker's default namespace).
DRAMATIQ_NAMESPACE = "dramatiq"

#: The dramatiq actor name, written into every message: renaming it orphans queued jobs.
ACTOR_NAME = "attach_replay"

#: The option holding the id a message is stored under in its queue (dramatiq's name).
REDIS_ID_OPTION = "redis_message_id"


def queue_keys(queue_name: str, namespace: str = DRAMATIQ_NAMESPACE) -> tuple[str, str]:
    """dramatiq's keys of a queue: the list of its message ids, the hash of their data."""
    key = f"{namespace}:{queue_name}"
    return key, f"{key}.msgs"


def acks_key(broker_id: str, queue_name: str, namespace: str = DRAMATIQ_NAMESPACE) -> str:
    """dramatiq's set of the messages one worker process holds from a queue.

    ``broker_id="*"`` gives the pattern matching every worker's set.
    """
    return f"{namespace}:__acks__.{broker_id}.{queue_name}"


def delay_queue_name(queue_name: str) -> str:
    """The queue dramatiq keeps a queue's delayed messages in (``dramatiq.common.dq_name``)."""
    return queue_name if queue_name.endswith(".DQ") else queue_name.removesuffix(".XQ") + ".DQ"


@dataclass(frozen=True)
class Job:
    """One message of the queue, as the job runner sees it.

    The options replay-attach keeps on a job across its attempts (``worker.keys.OPTION_*``)
    are read through the properties; the rest is carried as it came.
    """

    job_id: str
    queue_name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: When the job was first enqueued (unix ms), kept across retries.
    sent_at_ms: int = 0
    actor_name: str = ACTOR_NAME

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Job:
        """A job from a message's fields as dramatiq names them (``Message.asdict()``)."""
        return cls(
            job_id=str(fields["message_id"]),
            queue_name=str(fields["queue_name"]),
            args=tuple(fields.get("args") or ()),
            kwargs=dict(fields.get("kwargs") or {}),
            options=dict(fields.get("options") or {}),
            sent_at_ms=int(fields.get("message_timestamp") or 0),
            actor_name=str(fields.get("actor_name", ACTOR_NAME)),
        )

    @property
    def attempts(self) -> int:
        """Attempts made so far, each failed (0 on the first)."""
        return int(self.options.get(keys.OPTION_ATTEMPTS, 0))

    @property
    def first_attempt_at(self) -> float | None:
        value = self.options.get(keys.OPTION_FIRST_ATTEMPT_AT)
        return float(value) if value else None

    @property
    def door(self) -> str | None:
        door = self.options.get(keys.OPTION_DOOR)
        return str(door) if door is not None else None

    @property
    def delivery_id(self) -> str | None:
        delivery = self.options.get(keys.OPTION_DELIVERY_ID)
        return str(delivery) if delivery is not None else None

    @property
    def last_error(self) -> str | None:
        error = self.options.get(keys.OPTION_LAST_ERROR)
        return str(error) if error is not None else None

    def with_options(self, **options: Any) -> Job:
        """This job with ``options`` added or replaced (dramatiq's ``Message.copy``)."""
        return replace(self, options={**self.options, **options})


def encode(job: Job) -> bytes:
    """The job as dramatiq's ``Message.encode`` writes it."""
    fields = {
        "queue_name": job.queue_name,
        "actor_name": job.actor_name,
        "args": list(job.args),
        "kwargs": dict(job.kwargs),
        "options": dict(job.options),
        "message_id": job.job_id,
        "message_timestamp": job.sent_at_ms,
    }
    return json.dumps(fields, separators=(",", ":")).encode()


def decode(data: bytes | str) -> Job:
    """A stored message as a job; ``ValueError`` when it is not one."""
    try:
        fields = json.loads(data)
        return Job.from_fields(fields)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not a dramatiq message: {exc}") from exc


class EncodedMessage(NamedTuple):
    """A job as it is stored: its Redis id, its job id, its bytes."""

    redis_id: str
    job_id: str
    data: bytes


def stored(job: Job) -> EncodedMessage:
    """``job`` under a new Redis id, as dramatiq's enqueue stores every copy it writes."""
    redis_id = str(uuid.uuid4())
    copy = job.with_options(**{REDIS_ID_OPTION: redis_id})
    return EncodedMessage(redis_id, job.job_id, encode(copy))


def new_job(
    queue_name: str,
    event: Any,
    job_id: str | None = None,
    delivery_id: str | None = None,
    door: str | None = None,
) -> Job:
    """A job carrying ``event`` as its one argument (the job id is new unless given)."""
    options: dict[str, Any] = {}
    if delivery_id is not None:
        options[keys.OPTION_DELIVERY_ID] = delivery_id
    if door is not None:
        options[keys.OPTION_DOOR] = door
    return Job(
        job_id=job_id or str(uuid.uuid4()),
        queue_name=queue_name,
        args=(event,),
        options=options,
        sent_at_ms=int(time.time() * 1000),
    )
