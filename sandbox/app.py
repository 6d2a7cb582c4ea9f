"""`Sandbox`: the three vendor doubles plus the support agent's console, started together."""

from __future__ import annotations

import base64
import secrets
from types import TracebackType
from typing import TypeVar

from sandbox.console import Console
from sandbox.doubles.base import DEFAULT_FAULT_KINDS, Double
from sandbox.doubles.jira import JiraDouble
from sandbox.doubles.posthog import PostHogDouble
from sandbox.doubles.zendesk import ZendeskDouble

DEMO_TICKETS: list[tuple[int, str, str, list[str]]] = [
    (101, "Checkout button does nothing", "open", ["checkout", "web"]),
    (102, "Can't upload profile picture on Safari", "open", ["safari", "uploads"]),
    (103, "Dashboard charts show yesterday's data", "open", ["dashboard"]),
    (104, "Discount code rejected at payment step", "open", ["checkout", "billing"]),
    (105, "App logs me out every few minutes", "open", ["auth", "mobile"]),
    (106, "Invoice PDF missing VAT number", "closed", ["billing"]),
]
DEMO_ISSUES: list[tuple[str, str]] = [
    ("BUG-1", "Checkout button unresponsive after address autocomplete"),
    ("BUG-2", "Avatar upload fails with HEIC images on Safari"),
    ("BUG-3", "Dashboard cache not invalidated at midnight UTC"),
    ("BUG-4", "Promo code validation ignores case"),
    ("BUG-5", "Refresh token rotated twice under concurrent requests"),
]

#: A session PostHog has no recording of (recording off, blocked, or deleted).
SESSION_WITHOUT_RECORDING = "demo-session-no-recording"
#: A session whose recording PostHog ingests a few seconds after the sandbox is seeded.
SESSION_RECORDED_LATE = "demo-session-late"
RECORDED_LATE_AFTER_SECONDS = 3.0

_S = TypeVar("_S", bound="Sandbox")


class Sandbox:
    """Fake PostHog, Zendesk and Jira plus the console, configured together.

    `ports` may pin "posthog", "zendesk", "jira" and "console" (0 or absent: any free port).
    """

    #: The Zendesk ticket field "Session id" whose value the trigger's webhook sends.
    ZENDESK_SESSION_FIELD_ID = ZendeskDouble.SESSION_FIELD_ID

    def __init__(
        self,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: list[str] | None = None,
        seed: int | None = None,
        race_window: float = 0.0,
        jira_deployment: str = "cloud",
        auto_create: bool = False,
        ports: dict[str, int] | None = None,
        jira_context_path: str = "",
    ) -> None:
        ports = ports or {}
        unknown = set(ports) - {"posthog", "zendesk", "jira", "console"}
        if unknown:
            raise ValueError(f"unknown port names: {sorted(unknown)}")
        self.posthog = PostHogDouble(race_window=race_window, port=ports.get("posthog", 0))
        self.zendesk = ZendeskDouble(auto_create_tickets=auto_create, port=ports.get("zendesk", 0))
        self.jira = JiraDouble(
            deployment=jira_deployment,
            auto_create_issues=auto_create,
            port=ports.get("jira", 0),
            context_path=jira_context_path,
        )
        self.console = Console(self, port=ports.get("console", 0))
        self.set_latency(latency)
        self.set_faults(fault_rate, fault_kinds)
        if seed is not None:
            # Distinct but reproducible streams, so one vendor's traffic does not shift another's.
            for offset, double in enumerate(self.vendors):
                double.seed(seed + offset)

    @property
    def vendors(self) -> tuple[Double, Double, Double]:
        return (self.posthog, self.zendesk, self.jira)

    # ----------------------------------------------------------------- lifecycle

    def start(self: _S) -> _S:
        try:
            for double in (*self.vendors, self.console):
                double.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for double in (self.console, *self.vendors):
            double.stop()

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def console_url(self) -> str:
        return self.console.url

    # ----------------------------------------------------------------- configuration

    def set_latency(self, seconds: float) -> None:
        for double in self.vendors:
            double.latency = seconds

    def set_faults(self, rate: float, kinds: list[str] | None = None) -> None:
        """Random faults on all three vendors; `kinds` defaults to DEFAULT_FAULT_KINDS."""
        for double in self.vendors:
            double.fault_kinds = list(kinds) if kinds is not None else list(DEFAULT_FAULT_KINDS)
            double.fault_rate = rate

    def send_webhooks_to(self, intake_url: str) -> None:
        """Have Zendesk and Jira fire their signed webhooks at the intake server at
        `intake_url`: {intake_url}/webhooks/zendesk and {intake_url}/webhooks/jira, each with
        a fresh secret (see `env`)."""
        base = intake_url.rstrip("/")
        # Secrets shaped like the vendors': Zendesk shows 32 random bytes in base64, Jira takes
        # any string an admin types in.
        zendesk_secret = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        self.zendesk.send_webhooks(
            f"{base}/webhooks/zendesk", zendesk_secret, self.ZENDESK_SESSION_FIELD_ID
        )
        self.jira.send_webhooks(f"{base}/webhooks/jira", secrets.token_urlsafe(32))

    def seed_demo_data(self) -> None:
        self.posthog.remove_recording(SESSION_WITHOUT_RECORDING)
        self.posthog.add_recording(SESSION_RECORDED_LATE, appears_after=RECORDED_LATE_AFTER_SECONDS)
        for ticket_id, subject, status, tags in DEMO_TICKETS:
            self.zendesk.add_ticket(ticket_id, subject=subject, status=status, tags=tags)
        for key, summary in DEMO_ISSUES:
            self.jira.add_issue(key, summary=summary)

    def env(self) -> dict[str, str]:
        """The worker's configuration for talking to this sandbox (and, once `send_webhooks_to`
        is called, the intake server's for checking its webhooks)."""
        env = {
            "POSTHOG_HOST": self.posthog.url,
            "POSTHOG_PROJECT_ID": str(self.posthog.project_id),
            "POSTHOG_PERSONAL_API_KEY": self.posthog.api_key,
            "ZENDESK_URL": self.zendesk.url,
            "ZENDESK_EMAIL": self.zendesk.email,
            "ZENDESK_API_TOKEN": self.zendesk.api_token,
            "JIRA_URL": self.jira.url,
        }
        if self.jira.cloud:
            env["JIRA_EMAIL"] = self.jira.email
            env["JIRA_API_TOKEN"] = self.jira.api_token
        else:
            env["JIRA_PERSONAL_ACCESS_TOKEN"] = self.jira.personal_access_token
        # What the intake server needs to check the webhooks (after `send_webhooks_to`).
        if self.zendesk.webhook is not None:
            env["ZENDESK_WEBHOOK_SECRET"] = self.zendesk.webhook.secret
        if self.jira.webhook is not None:
            env["JIRA_WEBHOOK_SECRET"] = self.jira.webhook.secret
            env["JIRA_SESSION_FIELD"] = self.jira.webhook.session_field
        return env
