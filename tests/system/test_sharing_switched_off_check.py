"""``replay-attach check`` says once that PostHog's organisation switched public sharing off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.app import Sandbox
from tests.scenarios import run_cli


def test_check_says_once_that_public_sharing_is_switched_off(
    sandbox: Sandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sandbox.posthog.public_sharing_allowed = False
    result = run_cli(cli_env, "check")
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("PostHog:")]
    assert line.startswith("PostHog: ok,") and "public sharing is switched off" in line
    # A key without organization:read cannot tell; check says nothing of it then.
    sandbox.posthog.api_keys["phx_no_org"] = {
        scope
        for scope in sandbox.posthog.api_keys["phx_sandbox_key"]
        if scope != "organization:read"
    }
    data: dict[str, Any] = yaml.safe_load(Path(cli_env["REPLAY_ATTACH_CONFIG"]).read_text())
    data["posthog"]["personal_api_key"] = "phx_no_org"
    path = tmp_path / "no-org.yaml"
    path.write_text(yaml.safe_dump(data))
    quiet = run_cli({**cli_env, "REPLAY_ATTACH_CONFIG": str(path)}, "check")
    assert "PostHog: ok," in quiet.stdout and "public sharing" not in quiet.stdout
