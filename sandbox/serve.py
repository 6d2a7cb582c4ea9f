"""``replay-attach sandbox``: the doubles and the agent's console, served until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

from sandbox.app import Sandbox

PORT_NAMES = ("posthog", "zendesk", "jira", "console")
#: Where `replay-attach serve` listens by default, so the doubles' webhooks find it unasked.
DEFAULT_INTAKE_URL = "http://127.0.0.1:8080"


def serve(
    echo: Callable[[str], None],
    latency: float,
    fault_rate: float,
    fault_kinds: list[str],
    first_port: int,
    jira_deployment: str,
    intake_url: str | None = DEFAULT_INTAKE_URL,
    host: str = "127.0.0.1",
) -> None:
    """Serve until Ctrl-C or SIGTERM; raises ``ValueError`` (bad options) or ``OSError`` (ports).

    Zendesk and Jira fire their webhooks at ``intake_url`` (None: no webhooks). ``host`` is
    the address every double listens on (0.0.0.0 in a container, for the other containers)."""
    ports = {name: first_port + i for i, name in enumerate(PORT_NAMES)} if first_port else None
    box = Sandbox(
        latency=latency,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
        ports=ports,
        jira_deployment=jira_deployment,
    )
    for double in (*box.vendors, box.console):
        double.host = host
    if intake_url is not None:
        # Before start(), so a bad URL is refused before any port is taken.
        box.send_webhooks_to(intake_url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    box.start()
    with box:
        box.seed_demo_data()
        echo("# sandbox running; point replay-attach at it with:")
        for name, value in box.env().items():
            echo(f"export {name}={value}")
        if intake_url is not None:
            _echo_webhooks(echo, box, intake_url)
        echo(f"# support agent's view: {box.console_url}")
        echo("# press Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _echo_webhooks(echo: Callable[[str], None], box: Sandbox, intake_url: str) -> None:
    zendesk, jira = box.zendesk.webhook, box.jira.webhook
    assert zendesk is not None and jira is not None
    echo(f"# Zendesk fires a signed webhook at {zendesk.url} when a ticket is created")
    echo(
        f"#   (POST /api/v2/tickets.json) with custom field {zendesk.session_field_id}"
        " (the session id) set,"
    )
    echo("#   and when such a ticket is solved or closed;")
    echo(f"# Jira fires one at {jira.url} when an issue is created (POST /rest/api/2/issue)")
    echo(f"#   with {jira.session_field} (the session id) set.")
    echo(f"# To receive them, run `replay-attach serve` on {intake_url} with the variables above.")
