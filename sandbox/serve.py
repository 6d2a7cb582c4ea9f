"""``replay-attach sandbox``: the doubles and the agent's console, served until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

from sandbox.app import Sandbox

PORT_NAMES = ("posthog", "zendesk", "jira", "console")


def serve(
    echo: Callable[[str], None],
    latency: float,
    fault_rate: float,
    fault_kinds: list[str],
    first_port: int,
    jira_deployment: str,
) -> None:
    """Serve until Ctrl-C or SIGTERM; raises ``ValueError`` (bad options) or ``OSError`` (ports)."""
    ports = {name: first_port + i for i, name in enumerate(PORT_NAMES)} if first_port else None
    box = Sandbox(
        latency=latency,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
        ports=ports,
        jira_deployment=jira_deployment,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    box.start()
    with box:
        box.seed_demo_data()
        echo("# sandbox running; point replay-attach at it with:")
        for name, value in box.env().items():
            echo(f"export {name}={value}")
        echo(f"# support agent's view: {box.console_url}")
        echo("# press Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
