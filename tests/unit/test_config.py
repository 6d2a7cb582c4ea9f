"""Configuration: substitution, validation, and errors that name the key without a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import (
    DEFAULT_CONFIG_PATH,
    POSTHOG_CREDENTIALS,
    POSTHOG_PROJECT,
    ConfigError,
    load_config,
)

BASE_ENV = {"POSTHOG_PROJECT_ID": "42", "POSTHOG_PERSONAL_API_KEY": "phx_secret_value"}


def test_shipped_config_reads_the_public_environment_variables() -> None:
    env = {
        **BASE_ENV,
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "POSTHOG_HOST": "https://eu.posthog.com",
        "ZENDESK_URL": "https://acme.zendesk.com",
        "ZENDESK_EMAIL": "agent@acme.test",
        "ZENDESK_API_TOKEN": "zd-secret",
        "JIRA_URL": "https://acme.atlassian.net",
        "JIRA_EMAIL": "dev@acme.test",
        "JIRA_API_TOKEN": "jira-secret",
    }
    config = load_config(DEFAULT_CONFIG_PATH, env=env)
    assert config.broker.redis_url is not None
    assert config.broker.redis_url.get_secret_value() == "redis://127.0.0.1:6379/3"
    assert config.posthog.host == "https://eu.posthog.com"
    assert config.posthog.project_id == 42
    assert config.posthog.personal_api_key.get_secret_value() == "phx_secret_value"
    assert config.zendesk.url is not None and config.zendesk.public_comment is False
    assert config.jira.url is not None and config.jira.effective_api_version == 3


def test_defaults_disable_zendesk_and_jira_and_use_the_embedded_broker() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env=BASE_ENV)
    assert config.broker.redis_url is None
    assert config.posthog.host == "https://us.posthog.com"
    assert config.zendesk.url is None and config.jira.url is None


def test_data_center_token_selects_api_v2() -> None:
    env = {**BASE_ENV, "JIRA_URL": "http://127.0.0.1:8080", "JIRA_PERSONAL_ACCESS_TOKEN": "pat"}
    config = load_config(DEFAULT_CONFIG_PATH, env=env)
    assert config.jira.effective_api_version == 2


def test_default_in_reference_is_used_when_variable_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "posthog:\n  project_id: ${PID:-7}\n  personal_api_key: ${KEY}\n  host: http://127.0.0.1:9\n"
    )
    config = load_config(path, env={"PID": "", "KEY": "k"})
    assert config.posthog.project_id == 7
    assert config.posthog.host == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {**BASE_ENV, "POSTHOG_PROJECT_ID": "abc"},
            "posthog.project_id (from ${POSTHOG_PROJECT_ID}): Input should be a valid integer",
        ),
        (
            {**BASE_ENV, "POSTHOG_HOST": "us.posthog.com"},
            "posthog.host (from ${POSTHOG_HOST}): must be an http(s) URL",
        ),
        (
            {**BASE_ENV, "POSTHOG_HOST": "https://us.i.posthog.com"},
            "posthog.host (from ${POSTHOG_HOST}): is an ingestion host",
        ),
        (
            {**BASE_ENV, "ZENDESK_URL": "https://acme.zendesk.com:99999"},
            "zendesk.url (from ${ZENDESK_URL}): has a malformed port",
        ),
        (
            {**BASE_ENV, "ZENDESK_URL": "https://acme.zendesk.com"},
            "zendesk: is partly configured: also set zendesk.email (ZENDESK_EMAIL), "
            "zendesk.api_token (ZENDESK_API_TOKEN)",
        ),
        (
            {**BASE_ENV, "JIRA_URL": "https://acme.atlassian.net"},
            "jira: has a url but no credentials",
        ),
        (
            {
                **BASE_ENV,
                "JIRA_URL": "https://a.atlassian.net",
                "JIRA_PERSONAL_ACCESS_TOKEN": "p",
                "JIRA_API_VERSION": "3",
            },
            "api_version 3 is Cloud only",
        ),
        (
            {**BASE_ENV, "REDIS_URL": "http://127.0.0.1:6379"},
            "broker.redis_url (from ${REDIS_URL}): must be a redis://",
        ),
    ],
)
def test_invalid_values_are_named_without_their_value(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(DEFAULT_CONFIG_PATH, env=env)
    assert expected in str(caught.value)
    assert "phx_secret_value" not in str(caught.value)


def test_posthog_credentials_are_optional_at_load_and_named_when_required() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={"POSTHOG_PERSONAL_API_KEY": "phx_secret_value"})
    config.require()
    with pytest.raises(ConfigError) as caught:
        config.require(*POSTHOG_CREDENTIALS)
    assert str(caught.value) == (
        f"invalid configuration in {DEFAULT_CONFIG_PATH}:\n"
        "  posthog.project_id (from ${POSTHOG_PROJECT_ID}): is required"
    )
    with pytest.raises(ConfigError, match=r"posthog\.personal_api_key"):
        load_config(DEFAULT_CONFIG_PATH, env={"POSTHOG_PROJECT_ID": "7"}).require(
            *POSTHOG_CREDENTIALS
        )
    load_config(DEFAULT_CONFIG_PATH, env={"POSTHOG_PROJECT_ID": "7"}).require(*POSTHOG_PROJECT)


def test_the_default_configuration_is_the_top_level_file() -> None:
    # In the source tree the package's copy is a link to the one file people edit.
    assert DEFAULT_CONFIG_PATH.resolve() == (Path(__file__).parents[2] / "config.yaml").resolve()


def test_unknown_key_and_wrong_type_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "posthog: {project_id: 1, personal_api_key: phx_secret_value}\n"
        "zendesk: {public_coment: true}\n"
        "worker: {threads: many}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "zendesk.public_coment: is not a known setting" in message
    assert "worker.threads: Input should be a valid integer" in message
    assert "phx_secret_value" not in message


def test_secret_in_a_url_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "posthog: {project_id: 1, personal_api_key: k}\n"
        "jira: {url: 'https://user:hunter2@acme.atlassian.net', email: e, api_token: t}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "jira.url: must not carry credentials" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("posthog: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad, env={})


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("POSTHOG_HOST", "http://posthog.example.com", "posthog.host"),
        ("ZENDESK_URL", "http://acme.zendesk.com", "zendesk.url"),
        ("JIRA_URL", "http://jira.example.com:8080", "jira.url"),
        ("JIRA_URL", "http://10.0.0.7", "jira.url"),
    ],
)
def test_credentials_never_go_to_a_remote_host_in_clear_text(
    variable: str, value: str, key: str
) -> None:
    env = {
        **BASE_ENV,
        "ZENDESK_EMAIL": "agent@acme.test",
        "ZENDESK_API_TOKEN": "zd-secret",
        "JIRA_EMAIL": "dev@acme.test",
        "JIRA_API_TOKEN": "jira-secret",
        "ZENDESK_URL": "https://acme.zendesk.com",
        "JIRA_URL": "https://acme.atlassian.net",
        variable: value,
    }
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULT_CONFIG_PATH, env=env)
    message = str(error.value)
    section = key.partition(".")[0]
    assert f"{key} ({variable}) is http://" in message
    assert f"set {section}.allow_insecure_http (" in message and "): true if" in message
    assert "secret" not in message


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8123", "http://127.8.9.1", "http://localhost:80", "http://[::1]:9"]
)
def test_http_to_this_machine_is_accepted(host: str) -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={**BASE_ENV, "POSTHOG_HOST": host})
    assert config.posthog.host == host


def test_http_to_another_host_is_accepted_only_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "posthog:\n  project_id: 1\n  personal_api_key: k\n"
        "  host: http://tls-proxy.internal:8080\n  allow_insecure_http: true\n"
    )
    assert load_config(path, env={}).posthog.host == "http://tls-proxy.internal:8080"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://:pa/ss@redis.internal:6379/0", "has a malformed port"),
        ("redis://user:s3cr3t@redis.internal:63x9/0", "has a malformed port"),
        ("redis://:s3cr3t@/0", "has no host"),
        ("http://:s3cr3t@redis.internal", "must be a redis://"),
        ("unix://", "has no socket path"),
    ],
)
def test_a_bad_redis_url_is_named_without_its_secret(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(DEFAULT_CONFIG_PATH, env={**BASE_ENV, "REDIS_URL": url})
    message = str(error.value)
    assert f"broker.redis_url (from ${{REDIS_URL}}): {problem}" in message
    assert "s3cr3t" not in message and "ss@" not in message and "pa/" not in message
    assert "redis.internal" not in message


def test_a_redis_url_never_shows_in_the_configurations_repr() -> None:
    url = "redis://:s3cr3t@redis.internal:6379/0"
    config = load_config(DEFAULT_CONFIG_PATH, env={**BASE_ENV, "REDIS_URL": url})
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in str(config.model_dump())


@pytest.mark.parametrize(
    ("env", "ttl", "after_solved"),
    [
        ({}, 90.0, 7.0),
        ({"REPLAY_ATTACH_LINK_TTL_DAYS": "0.5"}, 0.5, 7.0),
        # ${NAME-default}: set but empty turns it off, as in a shell.
        ({"REPLAY_ATTACH_LINK_TTL_DAYS": ""}, None, 7.0),
        ({"REPLAY_ATTACH_REVOKE_AFTER_SOLVED_DAYS": "never"}, 90.0, None),
        ({"REPLAY_ATTACH_REVOKE_AFTER_SOLVED_DAYS": "0"}, 90.0, 0.0),
    ],
)
def test_links_end_after_their_time_to_live_and_solved_delay_unless_turned_off(
    env: dict[str, str], ttl: float | None, after_solved: float | None
) -> None:
    base = {"POSTHOG_PROJECT_ID": "1", "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    privacy = load_config(DEFAULT_CONFIG_PATH, env={**base, **env}).privacy
    assert (privacy.link_ttl_days, privacy.revoke_after_solved_days) == (ttl, after_solved)


def test_a_negative_time_to_live_is_refused_naming_its_variable() -> None:
    base = {"POSTHOG_PROJECT_ID": "1", "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    with pytest.raises(ConfigError, match=r"privacy.link_ttl_days \(from \$\{REPLAY_ATTACH_LINK"):
        load_config(DEFAULT_CONFIG_PATH, env={**base, "REPLAY_ATTACH_LINK_TTL_DAYS": "-3"})


def test_a_recording_wait_longer_than_the_retry_horizon_is_refused() -> None:
    base = {"POSTHOG_PROJECT_ID": "1", "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    with pytest.raises(
        ConfigError,
        match=r"recording_wait_minutes \(POSTHOG_RECORDING_WAIT_MINUTES\) must be shorter",
    ):
        load_config(DEFAULT_CONFIG_PATH, env={**base, "POSTHOG_RECORDING_WAIT_MINUTES": "1500"})


def test_the_requester_rule_defaults_to_the_webhook_doors_and_names_a_bad_mode() -> None:
    base = {"POSTHOG_PROJECT_ID": "1", "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    assert load_config(DEFAULT_CONFIG_PATH, env=base).privacy.match_requester == "webhooks"
    env = {**base, "REPLAY_ATTACH_MATCH_REQUESTER": "all"}
    assert load_config(DEFAULT_CONFIG_PATH, env=env).privacy.match_requester == "all"
    with pytest.raises(
        ConfigError,
        match=r"privacy.match_requester \(from \$\{REPLAY_ATTACH_MATCH_REQUESTER\}\): Input "
        r"should be 'webhooks', 'all' or 'off'",
    ):
        load_config(DEFAULT_CONFIG_PATH, env={**base, "REPLAY_ATTACH_MATCH_REQUESTER": "maybe"})


def test_an_unclosed_reference_is_refused_naming_its_key(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG_PATH.read_text().replace(
        "queue: ${REPLAY_ATTACH_QUEUE:-replay-attach}",
        "queue: ${REPLAY_ATTACH_QUEUE:-replay-attach",
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)
    base = {"POSTHOG_PROJECT_ID": "1", "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    with pytest.raises(ConfigError, match=r"broker.queue: has a \$\{ that no \} closes"):
        load_config(path, env=base)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"ZENDESK_URL": "https://acme.zendesk.com"},
            "also set zendesk.email (ZENDESK_EMAIL), zendesk.api_token (ZENDESK_API_TOKEN)",
        ),
        ({"JIRA_EMAIL": "a@b.c"}, "needs both jira.email (JIRA_EMAIL) and jira.api_token"),
        (
            {"REPLAY_ATTACH_INTAKE_TOKENS": "short"},
            "intake.tokens (REPLAY_ATTACH_INTAKE_TOKENS): token 1 is shorter than 16",
        ),
        (
            {"JIRA_WEBHOOK_SECRET": "s" * 20},
            "needs both intake.jira_webhook_secret (JIRA_WEBHOOK_SECRET) and "
            "intake.jira_session_field (JIRA_SESSION_FIELD)",
        ),
    ],
)
def test_a_message_naming_a_key_names_its_variable(env: dict[str, str], expected: str) -> None:
    base = {"POSTHOG_PROJECT_ID": "1", "POSTHOG_PERSONAL_API_KEY": "phx_x"}
    with pytest.raises(ConfigError) as caught:
        load_config(DEFAULT_CONFIG_PATH, env={**base, **env})
    assert expected in str(caught.value)


def test_a_plain_http_posthog_host_is_refused_only_with_a_key_to_send() -> None:
    # serve reads posthog.host for replay URLs, and holds no key that could travel in clear.
    env = {"POSTHOG_HOST": "http://sandbox:8001"}
    assert load_config(DEFAULT_CONFIG_PATH, env=env).posthog.host == "http://sandbox:8001"
    with pytest.raises(ConfigError, match="clear text"):
        load_config(DEFAULT_CONFIG_PATH, env={**env, **BASE_ENV})
    allowed = {**env, **BASE_ENV, "POSTHOG_ALLOW_INSECURE_HTTP": "true"}
    assert load_config(DEFAULT_CONFIG_PATH, env=allowed).posthog.allow_insecure_http
