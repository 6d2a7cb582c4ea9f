"""`Sandbox`: the three doubles configured and started together."""

from __future__ import annotations

import pytest
import requests

from sandbox.app import Sandbox
from tests.integration.sandbox.helpers import EchoDouble


def test_sandbox_env_faults_latency_and_demo_data() -> None:
    with Sandbox(seed=3, fault_rate=0.0) as sandbox:
        env = sandbox.env()
        assert set(env) == {
            "POSTHOG_HOST",
            "POSTHOG_PROJECT_ID",
            "POSTHOG_PERSONAL_API_KEY",
            "ZENDESK_URL",
            "ZENDESK_EMAIL",
            "ZENDESK_API_TOKEN",
            "JIRA_URL",
            "JIRA_EMAIL",
            "JIRA_API_TOKEN",
        }
        assert env["POSTHOG_HOST"] == sandbox.posthog.url and env["POSTHOG_PROJECT_ID"] == "1"
        sandbox.seed_demo_data()
        assert sorted(sandbox.zendesk.tickets) == [101, 102, 103, 104, 105, 106]
        assert sandbox.zendesk.tickets[101]["subject"] == "Checkout button does nothing"
        assert sandbox.zendesk.tickets[106]["status"] == "closed"
        assert sorted(sandbox.jira.issues) == [f"BUG-{n}" for n in range(1, 6)]
        sandbox.set_faults(1.0, ["5xx"])
        for double in sandbox.vendors:
            assert double.fault_rate == 1.0 and double.fault_kinds == ["5xx"]
        assert (
            requests.get(f"{env['ZENDESK_URL']}/api/v2/users/me.json", timeout=2).status_code == 503
        )
        sandbox.set_faults(0.0)
        sandbox.set_latency(0.2)
        assert all(double.latency == 0.2 for double in sandbox.vendors)
        assert sandbox.console_url.startswith("http://127.0.0.1:")
    with Sandbox(jira_deployment="datacenter") as sandbox:
        env = sandbox.env()
        assert "JIRA_EMAIL" not in env and "JIRA_API_TOKEN" not in env
        assert env["JIRA_PERSONAL_ACCESS_TOKEN"] == "jira_sandbox_pat"


def test_sandbox_pinned_ports_and_constructor_options() -> None:
    probe = EchoDouble()
    probe.start()
    port = probe.port
    probe.stop()
    with Sandbox(
        ports={"zendesk": port}, latency=0.05, fault_rate=0.1, fault_kinds=["429"], race_window=0.2
    ) as sandbox:
        assert sandbox.zendesk.url == f"http://127.0.0.1:{port}"
        assert sandbox.posthog.race_window == 0.2
        assert sandbox.jira.latency == 0.05 and sandbox.posthog.fault_kinds == ["429"]
    with pytest.raises(ValueError):
        Sandbox(ports={"nope": 1})
