"""The ``replay-attach`` command line, run as a user would: real processes, real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.scenarios import free_port
from tests.scenarios import run_cli as run

QUEUE_KEY = "dramatiq:replay-attach"


def queued(client: redis.Redis) -> int:
    return int(client.llen(QUEUE_KEY))


def test_enqueue_one_event_prints_the_job_id(
    cli_env: dict[str, str], redis_client: redis.Redis
) -> None:
    result = run(cli_env, "enqueue", "--session-id", "abc-123", "--zendesk-ticket", "101")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert len(job_id) == 36
    (raw,) = redis_client.hvals(QUEUE_KEY + ".msgs")
    message = json.loads(raw)
    assert message["message_id"] == job_id
    assert message["args"] == [{"session_id": "abc-123", "zendesk_ticket": 101}]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--session-id", "a/b", "--zendesk-ticket", "1"], "session_id: must be 1-200 letters"),
        (["--session-id", "a?b", "--jira-issue", "BUG-1"], "session_id: must be 1-200 letters"),
        (["--session-id", "", "--zendesk-ticket", "1"], "session_id: must be 1-200 letters"),
        (["--session-id", "x" * 201, "--zendesk-ticket", "1"], "session_id: must be 1-200 letters"),
        (["--session-id", "a b", "--zendesk-ticket", "1"], "session_id: must be 1-200 letters"),
        (
            ["--session-id", "s", "--zendesk-ticket", "0"],
            "zendesk_ticket: must be a positive integer",
        ),
        (["--session-id", "s", "--zendesk-ticket", "abc"], "'abc' is not a valid integer"),
        (["--session-id", "s"], "exactly one of zendesk_ticket and jira_issue is required"),
        (["--session-id", "s", "--zendesk-ticket", "1", "--jira-issue", "A-1"], "exactly one of"),
        (["--session-id", "s", "--jira-issue", "nokey"], "jira_issue: must be a Jira issue key"),
        ([], "give --session-id"),
    ],
)
def test_invalid_single_events_exit_2_and_enqueue_nothing(
    cli_env: dict[str, str], redis_client: redis.Redis, args: list[str], problem: str
) -> None:
    result = run(cli_env, "enqueue", *args)
    assert result.returncode == 2
    assert problem in result.stderr
    assert result.stdout == ""
    assert queued(redis_client) == 0


def test_enqueue_file_is_all_or_nothing(
    cli_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines = [json.dumps({"session_id": f"s{i}", "zendesk_ticket": 101}) for i in range(5)]
    lines.insert(3, '{"session_id": "bad/one", "zendesk_ticket": 101}')
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run(cli_env, "enqueue", "--file", str(path))
    assert result.returncode == 2
    assert "line 4: session_id: must be 1-200 letters" in result.stderr
    assert "nothing was enqueued" in result.stderr
    assert queued(redis_client) == 0

    for bad, problem in [
        ("{not json", "line 1: not valid JSON"),
        ("[1, 2]", "line 1: an event must be a JSON object"),
        ("", "holds no events"),
        ("[" * 5_000 + "]" * 5_000, "line 1: not an event: its JSON is nested too deeply"),
        ('{"session_id": "' + "x" * 70_000 + '"}', "line 1: longer than 65536 characters"),
    ]:
        path.write_text(bad + "\n")
        result = run(cli_env, "enqueue", "--file", str(path))
        assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert queued(redis_client) == 0


@pytest.mark.parametrize("field", ["zendesk_ticket", "replay_seconds"])
def test_a_number_too_long_to_read_is_an_invalid_line(
    cli_env: dict[str, str], redis_client: redis.Redis, field: str
) -> None:
    """json.loads refuses an integer past Python's digit limit with a plain ValueError."""
    first = json.dumps({"session_id": "s1", "zendesk_ticket": 101})
    second = f'{{"session_id": "s2", "{field}": {"9" * 5000}}}'
    text = f"{first}\n{second}\n"
    result = run(cli_env, "enqueue", "--file", "-", stdin=text)
    assert result.returncode == 2, result.stderr
    assert "line 2: not an event: it holds a number too long to read" in result.stderr
    assert "nothing was enqueued" in result.stderr and "Traceback" not in result.stderr
    assert queued(redis_client) == 0


def test_a_line_that_is_not_utf8_is_an_invalid_line(
    cli_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    good = [json.dumps({"session_id": f"s{i}", "zendesk_ticket": 101}).encode() for i in range(3)]
    bad = b'{"session_id": "s9", "zendesk_ticket": 101, "description": "caf\xe9"}'
    path.write_bytes(b"\n".join([good[0], good[1], bad, good[2]]) + b"\n")
    result = run(cli_env, "enqueue", "--file", str(path))
    assert result.returncode == 2, result.stderr
    assert "line 3: not UTF-8 text" in result.stderr and "Traceback" not in result.stderr
    assert queued(redis_client) == 0
    # Valid UTF-8 beyond ASCII is text like any other.
    path.write_bytes(b"\n".join([good[0], bad.replace(b"\xe9", "é".encode())]) + b"\n")
    result = run(cli_env, "enqueue", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert queued(redis_client) == 2


def test_enqueue_file_from_stdin(cli_env: dict[str, str], redis_client: redis.Redis) -> None:
    text = "".join(
        json.dumps({"session_id": f"s{i}", "jira_issue": "BUG-1"}) + "\n" for i in range(2500)
    )
    result = run(cli_env, "enqueue", "--file", "-", stdin=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "enqueued 2500 events"
    assert queued(redis_client) == 2500
    bad = text + "{}\n"
    result = run(cli_env, "enqueue", "--file", "-", stdin=bad)
    assert result.returncode == 2 and "line 2501: session_id: is required" in result.stderr
    assert queued(redis_client) == 2500


def test_help_texts_show_examples() -> None:
    for command in (
        ["--help"],
        ["enqueue", "--help"],
        ["worker", "--help"],
        ["failed", "list", "--help"],
        ["failed", "retry", "--help"],
        ["status", "--help"],
        ["check", "--help"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "worker", *command], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "Example" in result.stdout, command


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_acceptance_file_of_20_events_then_worker(
    cli_env: dict[str, str], sandbox: Any, redis_client: redis.Redis, tmp_path: Path
) -> None:
    tickets = [101, 102, 103, 104, 105] * 2
    issues = ["BUG-1", "BUG-2", "BUG-3", "BUG-4", "BUG-5"] * 2
    events = [{"session_id": f"zs-{i}", "zendesk_ticket": t} for i, t in enumerate(tickets)]
    events += [{"session_id": f"js-{i}", "jira_issue": k} for i, k in enumerate(issues)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert run(cli_env, "enqueue", "--file", str(path)).stdout.strip() == "enqueued 20 events"

    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "--processes", "1", "--threads", "4"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def all_landed() -> bool:
            notes = sum(
                len([c for c in t["comments"] if "PostHog session replay" in c["body"]])
                for t in sandbox.zendesk.tickets.values()
            )
            comments = sum(len(i["comments"]) for i in sandbox.jira.issues.values())
            return notes == 10 and comments == 10

        _wait_for(all_landed, 60, "20 attachments")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    for i, ticket in enumerate(tickets):
        notes = [c for c in sandbox.zendesk.tickets[ticket]["comments"] if f"zs-{i}" in c["body"]]
        assert len(notes) == 1 and notes[0]["public"] is False
        token = notes[0]["html_body"].split("/embedded/")[1].split('"')[0]
        assert sandbox.posthog.session_for(token) == f"zs-{i}" and sandbox.posthog.is_live(token)
    for i, key in enumerate(issues):
        links = [
            link
            for link in sandbox.jira.issues[key]["remote_links"]
            if link["globalId"].endswith(f":js-{i}")
        ]
        assert len(links) == 1
        token = links[0]["object"]["url"].rsplit("/", 1)[1]
        assert sandbox.posthog.session_for(token) == f"js-{i}" and sandbox.posthog.is_live(token)
        assert (
            len(
                [
                    c
                    for c in sandbox.jira.issues[key]["comments"]
                    if f"js-{i}" in json.dumps(c["body"])
                ]
            )
            == 1
        )

    status = run(cli_env, "status")
    assert "queued: 0" in status.stdout and "failed: 0" in status.stdout
    # Which server answers, so an operator sees the version in use.
    assert re.search(r"^redis: REDIS_URL, redis-server \d+\.\d+\.\d+", status.stdout, re.M)
    one = run(cli_env, "status", "--session-id", "zs-0", "--zendesk-ticket", "101")
    assert one.stdout.splitlines()[0] == "session zs-0 on zendesk:101:"
    assert "  note: done at" in one.stdout and "  tag: done at" in one.stdout
    assert "/embedded/" in one.stdout
    ticket = run(cli_env, "status", "--zendesk-ticket", "101").stdout
    assert ticket.count("session ") == 2 and "session zs-5 on zendesk:101:" in ticket
    session = run(cli_env, "status", "--session-id", "js-1").stdout
    assert "session js-1 on jira:BUG-2:" in session
    assert "remote_link: done at" in session and "comment: done at" in session
    assert (
        run(cli_env, "status", "--jira-issue", "BUG-9").stdout.strip()
        == "nothing recorded for that selection"
    )
    bad = run(cli_env, "status", "--session-id", "a/b")
    assert bad.returncode == 2 and "session_id: must be 1-200 letters" in bad.stderr


def test_failed_list_retry_and_purge(
    cli_env: dict[str, str], sandbox: Any, redis_client: redis.Redis
) -> None:
    # Ticket 999 does not exist yet: the job fails for good.
    run(cli_env, "enqueue", "--session-id", "late", "--zendesk-ticket", "999")
    run(cli_env, "enqueue", "--session-id", "gone", "--zendesk-ticket", "106")
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "-p", "1", "-t", "2"],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: (
                "attempts=1" in run(cli_env, "failed", "list").stdout
                and len(run(cli_env, "failed", "list", "--json").stdout.splitlines()) == 2
            ),
            60,
            "two failed jobs",
        )
        listed = [
            json.loads(line)
            for line in run(cli_env, "failed", "list", "--json").stdout.splitlines()
        ]
        reasons = {job["session_id"]: job["reason"] for job in listed}
        assert reasons == {
            "late": "Zendesk ticket 999 does not exist (404)",
            "gone": "Zendesk ticket 106 is closed and can no longer be updated (422)",
        }
        shown = run(cli_env, "status", "--zendesk-ticket", "106").stdout
        assert "(session gone on zendesk:106): Zendesk ticket 106 is closed" in shown
        human = run(cli_env, "failed", "list").stdout
        assert "Zendesk ticket 999 does not exist (404)" in human and "session=late" in human

        assert run(cli_env, "failed", "retry", "not-a-job").returncode == 2
        assert run(cli_env, "failed", "retry").returncode == 2
        # The cause is mended: the ticket now exists.
        sandbox.zendesk.add_ticket(999, subject="Created later")
        late_id = next(job["job_id"] for job in listed if job["session_id"] == "late")
        assert run(cli_env, "failed", "retry", late_id).stdout.strip() == "re-enqueued 1 jobs"
        _wait_for(
            lambda: any("late" in c["body"] for c in sandbox.zendesk.tickets[999]["comments"]),
            60,
            "the retried note",
        )
        remaining = [
            json.loads(line)["session_id"]
            for line in run(cli_env, "failed", "list", "--json").stdout.splitlines()
        ]
        assert remaining == ["gone"]
        assert run(cli_env, "failed", "purge", "--all").stdout.strip() == "purged 1 jobs"
        assert run(cli_env, "failed", "list").stdout.strip() == "no failed jobs"
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
    assert worker.returncode == 0


def test_check_reports_each_system_without_secrets(
    cli_env: dict[str, str], sandbox: Any, tmp_path: Path
) -> None:
    result = run(cli_env, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "configuration: ok"
    assert lines[1].startswith("PostHog: ok")
    assert lines[2].startswith("Zendesk: ok, authenticated as agent@sandbox.test")
    assert lines[3].startswith("Jira: ok, authenticated as")

    data = yaml.safe_load(Path(cli_env["REPLAY_ATTACH_CONFIG"]).read_text())
    data["posthog"]["personal_api_key"] = "phx_wrong_secret"
    data["zendesk"]["api_token"] = "zd_wrong_secret"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = run({**cli_env, "REPLAY_ATTACH_CONFIG": str(bad)}, "check")
    assert result.returncode == 1
    assert "PostHog: FAILED, PostHog rejected the personal API key (401)" in result.stdout
    assert "Zendesk: FAILED, Zendesk rejected the email or API token (401)" in result.stdout
    assert "Jira: ok" in result.stdout
    assert "wrong_secret" not in result.stdout + result.stderr


def test_check_lists_the_doors_of_serve(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = run(cli_env, "check")
    assert "serve /v1/bug-reports: off (no secret configured)" in result.stdout
    assert "serve /webhooks/zendesk: off (no secret configured)" in result.stdout

    data = yaml.safe_load(Path(cli_env["REPLAY_ATTACH_CONFIG"]).read_text())
    data["intake"] = {
        "tokens": "intake-token-0123456789abc",
        "jira_webhook_secret": "jira-secret-0123456789abc",
        "jira_session_field": "customfield_10042",
    }
    data["jira"] = {}  # the Jira door is on, but Jira is off: jobs could only fail
    config = tmp_path / "doors.yaml"
    config.write_text(yaml.safe_dump(data))
    result = run({**cli_env, "REPLAY_ATTACH_CONFIG": str(config)}, "check")
    assert result.returncode == 1
    assert "serve /v1/bug-reports: on" in result.stdout
    assert "serve /webhooks/posthog: on" in result.stdout  # an intake token opens it too
    assert "serve /webhooks/jira: FAILED, on, but jira.url is not configured" in result.stdout
    assert "0123456789abc" not in result.stdout + result.stderr


def test_serve_with_no_door_on_says_what_to_set(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "serve", "--port", "18999")
    assert result.returncode == 2
    assert "no door is on: set REPLAY_ATTACH_INTAKE_TOKENS" in result.stderr


@pytest.mark.parametrize(
    ("intake", "problem"),
    [
        ({"tokens": "tok-9x7q"}, "token 1 is shorter than 16 characters"),
        ({"jira_webhook_secret": "a-long-enough-secret-123"}, "needs both"),
        ({"posthog_webhook_secret": "not-a-whsec-secret-123"}, "starting with whsec_"),
        ({"zendesk_webhook_secret": "zd-q8w2"}, "zendesk_webhook_secret is shorter"),
    ],
)
def test_weak_or_incomplete_intake_secrets_are_refused_without_echoing_them(
    cli_env: dict[str, str], tmp_path: Path, intake: dict[str, str], problem: str
) -> None:
    data = yaml.safe_load(Path(cli_env["REPLAY_ATTACH_CONFIG"]).read_text())
    data["intake"] = intake
    config = tmp_path / "weak.yaml"
    config.write_text(yaml.safe_dump(data))
    result = run({**cli_env, "REPLAY_ATTACH_CONFIG": str(config)}, "check")
    assert result.returncode == 2
    assert problem in result.stderr
    for secret in intake.values():
        assert secret not in result.stderr


def _with(cli_env: dict[str, str], tmp_path: Path, section: str, **values: Any) -> dict[str, str]:
    data = yaml.safe_load(Path(cli_env["REPLAY_ATTACH_CONFIG"]).read_text())
    data.setdefault(section, {}).update(values)
    path = tmp_path / f"{section}-changed.yaml"
    path.write_text(yaml.safe_dump(data))
    return {**cli_env, "REPLAY_ATTACH_CONFIG": str(path)}


def test_enqueue_takes_a_distinct_id_and_refuses_none_when_it_is_required(
    cli_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path
) -> None:
    strict = _with(cli_env, tmp_path, "posthog", require_distinct_id=True)
    refused = run(strict, "enqueue", "--session-id", "s-1", "--zendesk-ticket", "101")
    assert refused.returncode == 2 and "distinct_id: is required" in refused.stderr
    lines = '{"session_id": "s-1", "zendesk_ticket": 101, "distinct_id": "anon-1"}\n' + (
        '{"session_id": "s-2", "zendesk_ticket": 101}\n'
    )
    from_file = run(strict, "enqueue", "--file", "-", stdin=lines)
    assert from_file.returncode == 2 and "line 2: distinct_id: is required" in from_file.stderr
    assert queued(redis_client) == 0
    given = run(
        strict,
        "enqueue",
        "--session-id",
        "s-1",
        "--zendesk-ticket",
        "101",
        "--distinct-id",
        "anon-1",
    )
    assert given.returncode == 0, given.stderr
    (raw,) = redis_client.hvals(QUEUE_KEY + ".msgs")
    assert json.loads(raw)["args"][0]["distinct_id"] == "anon-1"


def test_check_says_when_the_key_cannot_look_up_persons(
    cli_env: dict[str, str], sandbox: Any, tmp_path: Path
) -> None:
    sandbox.posthog.api_keys["phx_no_persons"] = {
        "sharing_configuration:read",
        "sharing_configuration:write",
        "session_recording:read",
    }
    env = _with(cli_env, tmp_path, "posthog", personal_api_key="phx_no_persons")
    result = run(env, "check")
    assert result.returncode == 1
    assert "PostHog: FAILED, the personal API key lacks the person:read scope (403)" in (
        result.stdout
    )


def test_check_says_when_the_key_cannot_read_recordings(
    cli_env: dict[str, str], sandbox: Any, tmp_path: Path
) -> None:
    sandbox.posthog.api_keys["phx_share_only"] = {
        "sharing_configuration:read",
        "sharing_configuration:write",
    }
    env = _with(cli_env, tmp_path, "posthog", personal_api_key="phx_share_only")
    result = run(env, "check")
    assert result.returncode == 1
    assert "PostHog: FAILED, the personal API key lacks the session_recording:read scope (403)" in (
        result.stdout
    )


COMMANDS_ON_REDIS = [
    ["status"],
    ["enqueue", "--session-id", "s1", "--zendesk-ticket", "101"],
    ["enqueue", "--file", "-"],
    ["failed", "list"],
    ["revoke", "--session-id", "s1"],
    ["worker", "-p", "1", "-t", "1"],
    ["serve", "--port", str(free_port())],
]


@pytest.mark.parametrize("refusal", ["open to others", "a symbolic link"])
def test_a_refused_data_directory_ends_every_command_with_one_line(
    sandbox: Any, tmp_path: Path, refusal: str
) -> None:
    """The embedded Redis refuses a data directory others could tamper with: each command that
    needs Redis says so in one line naming the directory and the fix, and exits 1; check
    reports it as a failed check."""
    from tests.conftest import config_data

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if refusal == "open to others":
        data_dir.chmod(0o777)
        fix = f"run `chmod 700 {data_dir}`"
    else:
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        data_dir.rmdir()
        data_dir.symlink_to(real)
        fix = "set REPLAY_ATTACH_DATA_DIR to a directory of your own"
    data = config_data(sandbox)
    data["broker"]["data_dir"] = str(data_dir)
    data["intake"] = {"tokens": ["t" * 32]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "POSTHOG_"))}
    env["REPLAY_ATTACH_CONFIG"] = str(path)
    event = json.dumps({"session_id": "s1", "zendesk_ticket": 101}) + "\n"
    for command in COMMANDS_ON_REDIS:
        result = run(env, *command, stdin=event, timeout=60)
        assert result.returncode == 1, (command, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert lines[0].startswith("replay-attach: the embedded Redis data directory ")
        assert str(data_dir) in lines[0] and fix in lines[0], (command, lines[0])
        assert result.stdout == ""
    # check starts nothing, and says what the worker would refuse.
    result = run(env, "check")
    assert result.returncode == 1, result.stdout
    assert f"embedded Redis: FAILED, the embedded Redis data directory {data_dir}" in result.stdout
    assert fix in result.stdout and result.stderr == ""
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize(
    "url", ["redis://:s3cret-pass@127.0.0.1:{port}/0", "redis://no-such-host.invalid:6379/0"]
)
def test_a_redis_that_cannot_be_reached_ends_every_command_with_one_line(
    sandbox: Any, tmp_path: Path, url: str
) -> None:
    """Refused or unknown host: one line naming REDIS_URL (never its password), exit 1."""
    from tests.conftest import config_data

    data = config_data(sandbox)
    data["broker"]["redis_url"] = url.format(port=free_port())
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "POSTHOG_"))}
    env["REPLAY_ATTACH_CONFIG"] = str(path)
    event = json.dumps({"session_id": "s1", "zendesk_ticket": 101}) + "\n"
    for command in [c for c in COMMANDS_ON_REDIS if c[0] not in ("worker", "serve")]:
        result = run(env, *command, stdin=event, timeout=60)
        assert result.returncode == 1, (command, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert lines[0].startswith("replay-attach: cannot reach Redis at redis://"), lines
        assert "(REDIS_URL)" in lines[0] and "s3cret-pass" not in lines[0], lines
        assert result.stdout == ""
    result = run(env, "check")
    assert result.returncode == 1, result.stdout
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("Redis:")]
    assert line.startswith("Redis: FAILED, cannot reach Redis at redis://") and "REDIS_URL" in line
    assert "s3cret-pass" not in result.stdout + result.stderr


def test_check_says_which_redis_answers(cli_env: dict[str, str], redis_url: str) -> None:
    result = run(cli_env, "check")
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("Redis:")]
    assert line.startswith("Redis: ok, redis://") or line.startswith("Redis: ok, unix://"), line
    assert "answers (Redis " in line


def test_check_names_the_url_of_a_helpdesk_it_cannot_reach(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = _with(cli_env, tmp_path, "zendesk", url=closed)
    env = _with(env, tmp_path, "jira", url=closed + "/jira")
    result = run(env, "check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    zendesk = next(line for line in lines if line.startswith("Zendesk:"))
    jira = next(line for line in lines if line.startswith("Jira:"))
    assert zendesk.startswith("Zendesk: FAILED,") and zendesk.endswith(f"(tried {closed})")
    assert jira.startswith("Jira: FAILED,") and jira.endswith(f"(tried {closed}/jira)")


def test_status_shows_each_waiting_retry_with_its_attempts_and_last_error(
    sandbox: Any,
    cli_env: dict[str, str],
    redis_client: redis.Redis,
    make_app: Any,
    run_worker: Any,
    tmp_path: Path,
) -> None:
    """A wrong Zendesk URL: the job waits for its retry, and status says why and until when."""
    from tests.conftest import config_data
    from tests.scenarios import wait_for
    from worker.jobs.producer import enqueue_bug_report
    from worker.jobs.scheduler import scheduled_count

    closed = f"http://127.0.0.1:{free_port()}"
    data = config_data(sandbox, zendesk__url=closed)
    data["retry"] = {"min_backoff_seconds": 600, "max_backoff_seconds": 900}
    app = make_app(data)
    enqueue_bug_report(session_id="s-stuck", zendesk_ticket=101, queue=app.queue)
    with run_worker(app):
        wait_for(lambda: scheduled_count(redis_client) == 1, 30, "the retry to be scheduled")
    env = _with(cli_env, tmp_path, "zendesk", url=closed)
    shown = json.loads(run(env, "status", "--json").stdout)
    (retry,) = shown["retries"]
    assert retry["session_id"] == "s-stuck" and retry["target"] == "zendesk:101"
    assert retry["attempts"] == 1 and retry["next_attempt_at"] > time.time() + 500
    assert "Zendesk" in retry["last_error"]
    text = run(env, "status").stdout
    assert "waiting job " in text and "1 attempt(s) failed, the last: Zendesk" in text
    selected = json.loads(run(env, "status", "--session-id", "s-stuck", "--json").stdout)
    assert [r["job_id"] for r in selected["retries"]] == [retry["job_id"]]
    assert "waiting job" in run(env, "status", "--zendesk-ticket", "101").stdout


def test_serve_on_a_taken_port_says_so_in_one_line_and_never_that_it_serves_there(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    import socket

    env = _with(cli_env, tmp_path, "intake", tokens="intake-token-one-0123456789")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(env, "serve", "--port", str(port), "--metrics-port", "0", timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"replay-attach: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert f":{port}" not in result.stdout
