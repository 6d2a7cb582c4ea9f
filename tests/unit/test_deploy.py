"""The deployment files agree with the product, checked without a cluster or a Docker engine.

The Kubernetes manifests are validated against the API schemas that kubernetes-validate
ships (offline); the compose file is run by tests/system/test_image.py, its policy checked here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).parents[2]
KUBERNETES = ROOT / "deploy/kubernetes"
#: The oldest and the newest Kubernetes releases still maintained when this was written.
KUBERNETES_VERSIONS = ("1.32.0", "1.35.0")
#: What only the worker may hold: every vendor credential the configuration reads.
VENDOR_CREDENTIALS = {
    "POSTHOG_PERSONAL_API_KEY",
    "ZENDESK_API_TOKEN",
    "ZENDESK_EMAIL",
    "JIRA_API_TOKEN",
    "JIRA_EMAIL",
    "JIRA_PERSONAL_ACCESS_TOKEN",
}


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents("replay-attach.yaml")}


def container(deployment: str) -> dict[str, Any]:
    (only,) = manifests()["Deployment", deployment]["spec"]["template"]["spec"]["containers"]
    return dict(only)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", ["replay-attach.yaml", "secret.template.yaml"])
def test_the_manifests_are_valid_kubernetes_objects(name: str, version: str) -> None:
    for doc in documents(name):
        kubernetes_validate.validate(doc, version, strict=True)


def test_each_deployment_runs_hardened_with_probes_and_resources() -> None:
    probes = {
        "replay-attach-worker": ("/healthz", "/healthz"),
        "replay-attach-serve": ("/healthz", "/readyz"),
    }
    for name, (live, ready) in probes.items():
        pod = manifests()["Deployment", name]["spec"]["template"]["spec"]
        spec = container(name)
        assert pod["securityContext"]["runAsNonRoot"] is True
        # The image's own user (Dockerfile: USER 10001:10001).
        assert pod["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert {m["mountPath"] for m in spec["volumeMounts"]} == {"/tmp"}
        assert set(spec["resources"]) == {"requests", "limits"}
        assert (
            spec["livenessProbe"]["httpGet"]["path"],
            spec["readinessProbe"]["httpGet"]["path"],
        ) == (
            live,
            ready,
        )
        assert ("PodDisruptionBudget", name) in manifests()


def test_the_worker_metrics_port_is_reachable_and_exposed() -> None:
    spec = container("replay-attach-worker")
    env = {item["name"]: item.get("value") for item in spec["env"]}
    assert env["REPLAY_ATTACH_METRICS_HOST"] == "0.0.0.0"
    (port,) = spec["ports"]
    assert str(port["containerPort"]) == env["REPLAY_ATTACH_METRICS_PORT"]
    service = manifests()["Service", "replay-attach-worker"]["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]


def test_the_alert_rules_name_the_scrape_jobs_the_manifests_give() -> None:
    rules = (ROOT / "deploy/prometheus-alerts.yml").read_text()
    jobs = set(re.findall(r'job="([^"]+)"', rules))
    assert jobs, "the alert rules select no job"
    services = {name for kind, name in manifests() if kind == "Service"}
    assert jobs <= services
    # The rules' header tells which jobs to configure: the same names.
    assert set(re.findall(r'"(replay-attach-[a-z]+)"', rules.split("groups:")[0])) == services


def test_serve_is_given_no_vendor_credential() -> None:
    secrets = {doc["metadata"]["name"]: doc for doc in documents("secret.template.yaml")}
    assert not VENDOR_CREDENTIALS & set(secrets["replay-attach-serve"]["stringData"])
    (source,) = container("replay-attach-serve")["envFrom"]
    assert source["secretRef"]["name"] == "replay-attach-serve"
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert not VENDOR_CREDENTIALS & set(compose["serve"]["environment"])
    assert "env_file" not in compose["serve"]
    assert VENDOR_CREDENTIALS <= set(compose["worker"]["environment"])


def test_the_dockerfile_builds_with_the_classic_builder_too() -> None:
    text = (ROOT / "Dockerfile").read_text()
    # BuildKit-only: mounts in RUN, heredocs, and a syntax directive that pulls a frontend.
    assert not re.search(r"^\s*RUN\s+--(mount|network|security)", text, re.MULTILINE)
    assert "<<" not in text
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("config.yaml", "worker", "README.md", "LICENSE", "pyproject.toml"):
        assert needed not in ignored
