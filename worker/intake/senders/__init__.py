"""Each sender at the intake, one module each: its authentication, its identity headers
and its body.

``bug_reports`` is ``POST /v1/bug-reports`` (intake tokens, ``Idempotency-Key``),
``zendesk``, ``jira`` and ``posthog`` are the three webhooks; ``templates`` is what
the senders' templates render, read the same way by every door.
"""
