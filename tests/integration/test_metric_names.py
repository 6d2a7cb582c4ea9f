"""The names the product exposes: the alert rules and the dashboard use no other, and the oldest
retry's age counts from its first attempt."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import config_data
from worker.jobs.messages import Job
from worker.jobs.redis_figures import RedisFigures

ROOT = Path(__file__).resolve().parents[2]


def test_the_alerts_and_dashboard_use_only_names_the_product_exposes(redis_client: Any) -> None:
    from prometheus_client import REGISTRY, generate_latest

    import integrations.metrics  # noqa: F401 - registers the vendor metrics
    import worker.metrics  # noqa: F401 - registers the product's counters

    declared = generate_latest(REGISTRY).decode()
    figures = RedisFigures(redis_client, "replay-attach")
    exposed = {family.name for family in text_string_to_metric_families(declared)}
    exposed |= {family.name for family in figures.collect()}
    # The worker's own, scraped from a running fleet in tests/system/test_metrics.py.
    exposed.add("replay_attach_worker_healthy")
    for path in ("deploy/prometheus-alerts.yml", "deploy/grafana-dashboard.json"):
        used = set(re.findall(r"replay_attach_[a-z_]+", (ROOT / path).read_text()))
        used = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
        assert used and used <= exposed, (path, used - exposed)
    rules = yaml.safe_load((ROOT / "deploy/prometheus-alerts.yml").read_text())
    assert {r["alert"] for g in rules["groups"] for r in g["rules"]} >= {
        "ReplayAttachFailedJobsRising",
        "ReplayAttachQueueStuck",
        "ReplayAttachVendorRateLimited",
        "ReplayAttachWorkerDown",
        "ReplayAttachRetryingForAnHour",
        "ReplayAttachIntakeAnswers503",
        "ReplayAttachIntakeShedding",
        "ReplayAttachIntakeTokenRateLimited",
        "ReplayAttachIntakeSlowSenders",
    }
    json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "rules", str(ROOT / "deploy/prometheus-alerts.yml")],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_the_oldest_retrys_age_counts_from_its_first_attempt(
    redis_client: Any, make_app: Any, sandbox: Any
) -> None:
    from worker import keys
    from worker.jobs.scheduler import schedule_retry

    app = make_app(config_data(sandbox))
    figures = RedisFigures(redis_client, "replay-attach")

    def age() -> float:
        (family,) = [
            f for f in figures.collect() if f.name == "replay_attach_oldest_retry_age_seconds"
        ]
        return float(family.samples[0].value)

    assert age() == 0.0
    # The job trying longest is not the one due soonest.
    for started, due_in in ((time.time() - 600, 60), (time.time() - 7200, 3000)):
        job = Job(
            job_id=f"job-{due_in}",
            queue_name="replay-attach",
            args=({"session_id": "s", "zendesk_ticket": 101},),
            options={keys.OPTION_FIRST_ATTEMPT_AT: started, keys.OPTION_ATTEMPTS: 3},
        )
        schedule_retry(app.broker, job, delay_seconds=due_in)
    assert 7190 < age() < 7300
