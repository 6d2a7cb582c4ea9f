"""Every Redis key replay-attach reads or writes, and the names fixed in queued messages.

Whoever debugs a production Redis finds here what each key means. replay-attach's
own keys start with ``REDIS_PREFIX``; dramatiq's start with ``DRAMATIQ_NAMESPACE``
and are laid out by dramatiq (``queue_keys``, ``acks_key``): replay-attach writes
and reads some of them itself, and ``tests/integration/test_dramatiq_compat.py`` checks that
dramatiq still lays them out so.
"""

from __future__ import annotations

#: The dramatiq queue that carries bug-report events (``broker.queue`` may rename it).
QUEUE_NAME = "replay-attach"

#: The dramatiq actor name, written into every message: renaming it orphans queued jobs.
ACTOR_NAME = "attach_replay"

#: Prefix of every Redis key replay-attach writes itself.
REDIS_PREFIX = "replay-attach"

#: Hash ``{prefix}:attachment:{target}:{session}``: what has landed for one
#: (ticket, session) pair. Fields: ``link`` and ``recording`` (the facts the note
#: shows, JSON) once minted; the steps ``note``, ``tag``, ``remote_link``,
#: ``comment``, or, when PostHog has no recording, ``missing_note``,
#: ``missing_tag``, ``missing_comment``; step values ``pending:<unix time>`` from
#: the start of the attempt that will write it (note, comment) or while a write
#: is in flight, and ``done:<unix time>`` once the vendor confirmed it (see
#: ``worker.attach.ledger``).
ATTACHMENT_KEY = REDIS_PREFIX + ":attachment:{target}:{session}"

#: Lock ``{prefix}:lock:attach:{target}:{session}``: one worker at a time writes
#: to one (ticket, session) pair.
ATTACH_LOCK_KEY = REDIS_PREFIX + ":lock:attach:{target}:{session}"

#: Lock ``{prefix}:lock:mint:{project}:{session}``: PostHog expires one of two
#: tokens minted concurrently for the same session, so minting is serialised; a
#: revocation of the session holds it too, so that no share lands during it.
MINT_LOCK_KEY = REDIS_PREFIX + ":lock:mint:{project}:{session}"

#: Sorted set of scheduled retries (member: a message's Redis id, score: due
#: time in ms) and the hash of their encoded messages (see ``worker.jobs.scheduler``).
SCHEDULED_KEY = REDIS_PREFIX + ":scheduled"
SCHEDULED_MESSAGES_KEY = REDIS_PREFIX + ":scheduled:messages"

#: Hash of failed jobs: job id -> JSON record (see ``worker.jobs.failed``).
FAILED_JOBS_KEY = REDIS_PREFIX + ":failed"

#: Sorted set of failed job ids scored by their last failure (for retention).
FAILED_INDEX_KEY = REDIS_PREFIX + ":failed:by-time"

#: Sliding-window request budget of one system (``worker.jobs.rate_limits``).
BUDGET_KEY = REDIS_PREFIX + ":budget:{system}"

#: String ``{prefix}:delivery:{door}:{digest}``: one delivery the intake has
#: enqueued (``worker.intake.deliveries``), by the sha256 of what identifies it
#: (the sender's delivery id, its signature, its body, or the ``Idempotency-Key``
#: with the digest of the token that sent it); value: the body's sha256, a
#: newline, the JSON list of job ids. Expires after ``intake.deduplicate_hours``.
DELIVERY_KEY = REDIS_PREFIX + ":delivery:{door}:{digest}"

#: Hash ``{prefix}:link:{session}``: the public link of one session's recording
#: (``worker.attach.links``). Fields: ``token``, ``shared_at``, ``state`` (``active``
#: or ``revoked``), ``revoked_at``, ``revoked_reason``, ``revoked_by``,
#: ``ticket:{target}`` (the link as posted on that ticket), ``trace:{target}`` (the
#: revocation's note on that ticket, ``pending:``/``done:`` as in the ledger) and
#: ``unshared`` (PostHog's sharing of it is off). Kept until the link is revoked, then
#: ``LINK_RETENTION_SECONDS`` more.
LINK_KEY = REDIS_PREFIX + ":link:{session}"

#: Sorted set of sessions with a link, scored by when it was first shared.
LINKS_BY_TIME_KEY = REDIS_PREFIX + ":links:by-time"

#: Sorted set of sessions whose link was revoked, scored by when (kept as long as their
#: records, ``worker.attach.links.LINK_RETENTION_SECONDS``), for the count of revoked links.
LINKS_REVOKED_KEY = REDIS_PREFIX + ":links:revoked"

#: Set ``{prefix}:links:ticket:{target}`` of the sessions whose link a ticket holds.
LINKS_OF_TICKET_KEY = REDIS_PREFIX + ":links:ticket:{target}"

#: Set ``{prefix}:links:ticket-revoked:{target}`` of the sessions whose revoked link a ticket
#: held, so that revoking the ticket's links again says when they were revoked. Expires with
#: the links' records.
LINKS_REVOKED_OF_TICKET_KEY = REDIS_PREFIX + ":links:ticket-revoked:{target}"

#: Sorted set of solved or closed tickets (member: target), scored by when their links
#: are due to end (``privacy.revoke_after_solved_days`` after); a reopened ticket leaves it.
#: Written by the intake's webhook doors, read by the worker fleet's sweep.
SOLVED_TICKETS_KEY = REDIS_PREFIX + ":links:solved"

#: String ``{prefix}:ticket-state-at:{target}``: when the sender says the last solving or
#: reopening the intake applied to that ticket happened (unix ms, as signed), so that an
#: older one arriving later (a retry, or a captured delivery sent again) changes nothing.
#: Expires after ``intake.deduplicate_hours``; older changes are not applied at all.
TICKET_STATE_AT_KEY = REDIS_PREFIX + ":ticket-state-at:{target}"

#: String ``{prefix}:intake-rate:{token}:{minute}``: events one intake token enqueued in
#: one minute (unix time // 60), ``token`` being the token's digest
#: (``worker.intake.signatures.token_id``), never the token. Expires after two minutes.
INTAKE_RATE_KEY = REDIS_PREFIX + ":intake-rate:{token}:{minute}"

#: Lock ``{prefix}:lock:sweep``: one worker process of the fleet sweeps at a time.
SWEEP_LOCK_KEY = REDIS_PREFIX + ":lock:sweep"

#: The message option naming the intake delivery that enqueued a job.
OPTION_DELIVERY_ID = "replay_attach_delivery_id"

#: Message options replay-attach keeps on a job's messages across its attempts: how many
#: attempts failed, when the first began (unix time), and the last one's reason (for
#: ``status``).
OPTION_ATTEMPTS = "replay_attach_attempts"
OPTION_FIRST_ATTEMPT_AT = "replay_attach_first_attempt_at"
OPTION_LAST_ERROR = "replay_attach_last_error"

#: The message option naming the intake door a job came through (its path, such as
#: ``/webhooks/zendesk``); absent for the command line and the Python API. The
#: worker applies ``privacy.match_requester`` by it.
OPTION_DOOR = "replay_attach_door"

#: Prefix of dramatiq's own keys (RedisBroker's default namespace).
DRAMATIQ_NAMESPACE = "dramatiq"


def queue_keys(queue_name: str, namespace: str = DRAMATIQ_NAMESPACE) -> tuple[str, str]:
    """dramatiq's keys of a queue: the list of its message ids, the hash of their data.

    dramatiq's enqueue writes a message to both; replay-attach writes them
    itself for batched enqueues and promoted retries, and reads them for the
    quarantine and ``status``.
    """
    key = f"{namespace}:{queue_name}"
    return key, f"{key}.msgs"


def acks_key(broker_id: str, queue_name: str, namespace: str = DRAMATIQ_NAMESPACE) -> str:
    """dramatiq's set of the messages one worker process holds from a queue.

    ``broker_id="*"`` gives the pattern matching every worker's set.
    """
    return f"{namespace}:__acks__.{broker_id}.{queue_name}"
