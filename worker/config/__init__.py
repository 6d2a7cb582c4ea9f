"""Configuration: ``config.yaml`` with ``${NAME}`` references, validated into a frozen ``Config``.

The loader (``worker.config.loader``) reads the file and substitutes the environment;
what each setting means lives with its section: ``worker.config.sections`` (queue,
retries, worker, intake, privacy, notes) and ``worker.config.vendors`` (PostHog, Zendesk,
Jira); ``worker.config.model`` puts them together.
"""

from worker.config.errors import ConfigError
from worker.config.loader import CONFIG_ENV, DEFAULT_CONFIG_PATH, load_config
from worker.config.model import POSTHOG_CREDENTIALS, POSTHOG_PROJECT, Config
from worker.config.sections import RetryConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "POSTHOG_CREDENTIALS",
    "POSTHOG_PROJECT",
    "Config",
    "ConfigError",
    "RetryConfig",
    "load_config",
]
