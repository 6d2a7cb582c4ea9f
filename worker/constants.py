"""Names and defaults in one place.

Whoever debugs a production Redis can find here what every key means. Every
Redis key the project writes starts with ``REDIS_PREFIX``; dramatiq's own keys
start with ``dramatiq:``.
"""

from __future__ import annotations

#: The dramatiq queue that carries bug-report events.
QUEUE_NAME = "replay-attach"

#: The dramatiq actor name (part of every message: renaming it orphans queued jobs).
ACTOR_NAME = "attach_replay"

#: Prefix of every Redis key replay-attach writes itself.
REDIS_PREFIX = "replay-attach"

#: Hash ``{prefix}:attachment:{target}:{session}``: what has landed for one
#: (ticket, session) pair. Fields: ``link``, ``note``, ``tag``, ``remote_link``,
#: ``comment``; values ``pending:<unix time>`` from the start of the attempt that
#: will write it (note, comment) or while a write is in flight, and
#: ``done:<unix time>`` once the vendor confirmed it.
ATTACHMENT_KEY = REDIS_PREFIX + ":attachment:{target}:{session}"

#: Lock ``{prefix}:lock:attach:{target}:{session}``: one worker at a time writes
#: to one (ticket, session) pair.
ATTACH_LOCK_KEY = REDIS_PREFIX + ":lock:attach:{target}:{session}"

#: Lock ``{prefix}:lock:mint:{project}:{session}``: PostHog expires one of two
#: tokens minted concurrently for the same session, so minting is serialised.
MINT_LOCK_KEY = REDIS_PREFIX + ":lock:mint:{project}:{session}"

#: Sorted set of scheduled retries (member: a message's Redis id, score: due
#: time in ms) and the hash of their encoded messages (see ``worker.scheduler``).
SCHEDULED_KEY = REDIS_PREFIX + ":scheduled"
SCHEDULED_MESSAGES_KEY = REDIS_PREFIX + ":scheduled:messages"

#: Hash of failed jobs: job id -> JSON record (see ``worker.failed``).
FAILED_JOBS_KEY = REDIS_PREFIX + ":failed"

#: Sorted set of failed job ids scored by their last failure (for retention).
FAILED_INDEX_KEY = REDIS_PREFIX + ":failed:by-time"

#: How long the attachment ledger remembers a (ticket, session) pair. A
#: duplicate event arriving later than this is checked against the ticket itself.
LEDGER_TTL_SECONDS = 30 * 24 * 3600

#: How long a job waits for another worker's mint of the same session to end.
#: (Locks themselves are renewed leases: see ``worker.ledger``.)
MINT_LOCK_SECONDS = 60

#: Zendesk tag added to a ticket that received a replay link.
DEFAULT_ZENDESK_TAG = "posthog_replay"

#: Zendesk tag added to a ticket whose replay could not be attached for good.
DEFAULT_ZENDESK_FAILED_TAG = "posthog_replay_failed"

#: Message options replay-attach stores on dramatiq messages.
OPTION_ATTEMPTS = "replay_attach_attempts"
OPTION_FIRST_ATTEMPT_AT = "replay_attach_first_attempt_at"
OPTION_LAST_REASON = "replay_attach_last_reason"
