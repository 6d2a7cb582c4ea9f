"""``replay-attach demo``: the whole product on one machine, with nothing to set up.

Starts the embedded Redis in a temporary directory, the sandbox doubles of
PostHog, Zendesk and Jira, the intake (``serve``) and a worker; enqueues sample
bug reports (one of which meets a transient Zendesk outage and recovers);
creates a Zendesk ticket and a Jira issue with the session id in a field,
whose signed webhooks reach the intake with no enqueue call at all, and a
ticket whose requester pasted another person's session id, which the
requester rule refuses (nothing shared, nothing posted); shows progress;
prints what landed on each ticket; then shuts everything down and removes the
temporary directory.
"""

from __future__ import annotations

import html
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import requests
from prometheus_client import REGISTRY
from tqdm import tqdm

from sandbox.app import SESSION_RECORDED_LATE, SESSION_WITHOUT_RECORDING, Sandbox
from sandbox.doubles.jira_webhooks import SESSION_FIELD
from worker.app import App, create_app, worker_threads
from worker.attach.events import BugReport, parse_event
from worker.config import DEFAULT_CONFIG_PATH, Config, RetryConfig, load_config
from worker.embedded_redis import temporary_embedded_redis
from worker.intake.http_app import create_application
from worker.intake.server import intake_in_thread

SAMPLE_REPORTS: list[dict[str, Any]] = [
    {
        "zendesk_ticket": 101,
        "description": "I click Pay and nothing happens.",
        "replay_seconds": 95,
    },
    {"zendesk_ticket": 102, "description": "My photo upload spins forever on Safari."},
    {"zendesk_ticket": 103, "description": "The charts still show yesterday."},
    {"zendesk_ticket": 104, "description": "SPRING10 says 'invalid code'."},
    {
        "jira_issue": "BUG-1",
        "description": "Pay button dead after autocomplete.",
        "replay_seconds": 12,
    },
    {"jira_issue": "BUG-2", "description": "HEIC avatar upload fails."},
    {"jira_issue": "BUG-5", "description": "Logged out twice in ten minutes."},
    # PostHog has no recording of this one: after the wait, a note says so (no link).
    {
        "zendesk_ticket": 105,
        "session_id": SESSION_WITHOUT_RECORDING,
        "description": "Logged out again, on my phone.",
    },
    # Its recording is ingested a few seconds late: found on a later look.
    {"jira_issue": "BUG-3", "session_id": SESSION_RECORDED_LATE},
]

#: The ticket that meets a transient outage on its first attempt.
FLAKY_TICKET = 102

#: Sessions of the zero-code path: a ticket and an issue created with the session id in a field.
WEBHOOK_SESSIONS = {"zendesk": "demo-session-webhook-zd", "jira": "demo-session-webhook-jira"}


#: Someone who files a ticket through the help-centre form and pastes another person's
#: session id into its field (that of sample 1, the customer's): the requester rule refuses it.
INTRUDER_EMAIL = "mallory@sandbox.test"
INTRUDER_SESSION = "demo-session-01"

#: How long the demo looks for a recording that is not there (30 minutes by default).
DEMO_RECORDING_WAIT_MINUTES = 0.1


def _demo_config(box: Sandbox, redis_url: str) -> Config:
    """The shipped config.yaml, read with the sandbox's environment variables."""
    env = {
        **box.env(),
        "REDIS_URL": redis_url,
        "POSTHOG_RECORDING_WAIT_MINUTES": str(DEMO_RECORDING_WAIT_MINUTES),
    }
    config = load_config(DEFAULT_CONFIG_PATH, env=env)
    # Short waits so that the transient failure visibly recovers in seconds.
    fast = RetryConfig(min_backoff_seconds=1, max_backoff_seconds=2)
    return config.model_copy(update={"retry": fast})


def _landed(box: Sandbox, report: BugReport) -> str | None:
    """What the agent sees for this report, or None while it has not landed."""
    if report.zendesk_ticket is not None:
        ticket = box.zendesk.tickets.get(report.zendesk_ticket) or {}
        for comment in ticket.get("comments", []):
            body = comment.get("html_body") or comment.get("body") or ""
            if f"PostHog has no recording of session {report.session_id}" in body:
                return "internal note: PostHog has no recording of this session (no link)"
            if report.session_id in body:
                kind = "internal note" if not comment.get("public") else "public reply"
                found = re.search(r'href="([^"]*/embedded/[^"]*)"', body)
                return f"{kind} with {html.unescape(found.group(1)) if found else '?'}"
        return None
    issue = box.jira.issues.get(report.jira_issue or "") or {}
    links = [
        link["object"]["url"]
        for link in issue.get("remote_links", [])
        if link.get("globalId", "").endswith(":" + report.session_id)
    ]
    comments = [c for c in issue.get("comments", []) if report.session_id in str(c.get("body"))]
    if any("PostHog has no recording" in str(c.get("body")) for c in comments):
        return "comment: PostHog has no recording of this session (no link)"
    if links and comments:
        return f"remote link + comment with {links[0]}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_demo(echo: Callable[[str], None], keep: bool = False) -> int:
    with temporary_embedded_redis(prefix="ra-demo-") as redis_url, Sandbox() as box:
        echo(f"embedded Redis started: {redis_url}")
        box.seed_demo_data()
        echo(f"sandbox: PostHog {box.posthog.url}, Zendesk {box.zendesk.url}, Jira {box.jira.url}")
        echo(f"support agent's view: {box.console_url}")
        box.zendesk.fail_next("5xx", method="PUT", path_regex=rf"/tickets/{FLAKY_TICKET}\.json$")
        port = _free_port()
        box.send_webhooks_to(f"http://127.0.0.1:{port}")
        config = _demo_config(box, redis_url)
        app = create_app(config, url=redis_url)
        try:
            with (
                worker_threads(app, threads=4),
                intake_in_thread(create_application(config, redis_url), port) as intake_url,
            ):
                echo(f"replay-attach serve: {intake_url} (Zendesk and Jira webhooks go there)")
                return _attach_samples(echo, box, app, keep)
        finally:
            app.broker.close()


def _create_by_webhook(echo: Callable[[str], None], box: Sandbox) -> list[BugReport]:
    """A ticket and an issue created with the session id in a field, as a help-centre form
    or a Jira user would: their webhooks reach the intake, and nothing calls enqueue."""
    ticket = requests.post(
        f"{box.zendesk.url}/api/v2/tickets.json",
        json={
            "ticket": {
                "subject": "Export to CSV downloads an empty file",
                "comment": {"body": "Sent from the help centre form."},
                "custom_fields": [
                    {"id": box.ZENDESK_SESSION_FIELD_ID, "value": WEBHOOK_SESSIONS["zendesk"]}
                ],
            }
        },
        auth=(f"{box.zendesk.email}/token", box.zendesk.api_token),
        timeout=10,
    )
    ticket.raise_for_status()
    issue = requests.post(
        f"{box.jira.url}/rest/api/2/issue",
        json={
            "fields": {
                "project": {"key": "BUG"},
                "summary": "CSV export empty for filtered views",
                SESSION_FIELD: WEBHOOK_SESSIONS["jira"],
            }
        },
        auth=(box.jira.email, box.jira.api_token),
        timeout=10,
    )
    issue.raise_for_status()
    ticket_id, key = ticket.json()["ticket"]["id"], issue.json()["key"]
    echo(
        f"created Zendesk ticket {ticket_id} and Jira issue {key} with a session id in a field: "
        "their signed webhooks enqueue them (no enqueue call)"
    )
    return [
        parse_event({"session_id": WEBHOOK_SESSIONS["zendesk"], "zendesk_ticket": ticket_id}),
        parse_event({"session_id": WEBHOOK_SESSIONS["jira"], "jira_issue": key}),
    ]


def _file_as_intruder(echo: Callable[[str], None], box: Sandbox) -> int:
    """A ticket whose requester pasted another person's session id; returns its id."""
    ticket = requests.post(
        f"{box.zendesk.url}/api/v2/tickets.json",
        json={
            "ticket": {
                "subject": "Please look at this recording",
                "comment": {"body": "Sent from the help centre form."},
                "requester": {"email": INTRUDER_EMAIL},
                "custom_fields": [{"id": box.ZENDESK_SESSION_FIELD_ID, "value": INTRUDER_SESSION}],
            }
        },
        auth=(f"{box.zendesk.email}/token", box.zendesk.api_token),
        timeout=10,
    )
    ticket.raise_for_status()
    ticket_id = int(ticket.json()["ticket"]["id"])
    echo(
        f"created Zendesk ticket {ticket_id} as {INTRUDER_EMAIL}, with another person's "
        f"session ({INTRUDER_SESSION}) in its field"
    )
    return ticket_id


def _refused(outcome: str = "requester_mismatch") -> float:
    return (
        REGISTRY.get_sample_value(
            "replay_attach_jobs_total", {"system": "zendesk", "outcome": outcome}
        )
        or 0.0
    )


def _attach_samples(echo: Callable[[str], None], box: Sandbox, app: App, keep: bool) -> int:
    reports = []
    for number, sample in enumerate(SAMPLE_REPORTS, start=1):
        report = parse_event({"session_id": f"demo-session-{number:02d}", **sample})
        app.queue.enqueue(report)
        reports.append(report)
    echo(
        f"enqueued {len(reports)} sample bug reports (ticket {FLAKY_TICKET} meets a Zendesk "
        f"outage first; {SESSION_WITHOUT_RECORDING} has no recording in PostHog, "
        f"{SESSION_RECORDED_LATE}'s arrives late)"
    )
    reports += _create_by_webhook(echo, box)
    refused_before = _refused()
    intruder_ticket = _file_as_intruder(echo, box)
    pending = set(range(len(reports)))
    deadline = time.monotonic() + 60
    with tqdm(total=len(reports), desc="attaching replays", unit="report") as bar:
        while pending and time.monotonic() < deadline:
            for index in sorted(pending):
                if _landed(box, reports[index]) is not None:
                    pending.discard(index)
                    bar.update(1)
            time.sleep(0.1)
    for report in reports:
        how = " (by webhook)" if report.session_id in WEBHOOK_SESSIONS.values() else ""
        echo(f"  {report.target_label}: {_landed(box, report) or 'NOT ATTACHED'}{how}")
    while _refused() <= refused_before and time.monotonic() < deadline:
        time.sleep(0.1)
    intruder_refused = _refused() > refused_before
    notes = len(box.zendesk.comments(intruder_ticket)) - 1  # the form's own comment aside
    echo(
        f"  refused: Zendesk ticket {intruder_ticket}: its requester is not the person recorded "
        f"in {INTRUDER_SESSION}; nothing shared, {'no note' if notes == 0 else 'A NOTE'} "
        "(by webhook)"
        if intruder_refused
        else f"  Zendesk ticket {intruder_ticket}: NOT REFUSED"
    )
    flaky = [r for r in box.zendesk.calls("PUT") if f"/tickets/{FLAKY_TICKET}.json" in r.path]
    echo(
        f"  (ticket {FLAKY_TICKET}: {len(flaky)} attempts, the first answered "
        f"{flaky[0].status if flaky else '?'})"
    )
    for session in (SESSION_RECORDED_LATE, SESSION_WITHOUT_RECORDING):
        looks = box.posthog.recording_reads(session)
        shared = box.posthog.share_config(session) is not None
        echo(
            f"  ({session}: {len(looks)} looks at its recording, the last answered "
            f"{looks[-1].status if looks else '?'}; {'shared' if shared else 'never shared'})"
        )
    failed = app.failed.all()
    for job in failed:
        echo(f"  failed: {job.reason}")
    if keep:
        echo(f"kept running: browse {box.console_url} ; press Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    ok = not pending and not failed and intruder_refused and notes == 0
    echo(
        "demo finished: every sample report has its replay on its ticket, or a note saying "
        "PostHog has no recording of it"
        if ok
        else "demo finished with reports that did not attach (see above)"
    )
    return 0 if ok else 1
