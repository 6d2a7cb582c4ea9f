"""How every command logs: today's readable text, or one JSON object per line.

``--log-format json`` (or ``REPLAY_ATTACH_LOG_FORMAT=json``) makes each line a
JSON object with ``time`` (ISO 8601), ``level``, ``logger`` and ``message``,
and, in a job, its ``job_id``, ``session_id``, ``target``, ``attempt``,
``delivery_id`` (when the intake enqueued it) and ``duration_ms`` so far; a
job's last line also has its ``outcome``. dramatiq's own lines go through the
same handler. The formatting is python-json-logger's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, Any

#: The environment variable every process of a command reads (exported by ``--log-format``).
LOG_FORMAT_ENV = "REPLAY_ATTACH_LOG_FORMAT"
LOG_FORMATS = ("text", "json")

#: The readable lines of today (dramatiq's own format).
TEXT_FORMAT = (
    "[%(asctime)s] [PID %(process)d] [%(threadName)s] [%(name)s] [%(levelname)s] %(message)s"
)

_job: ContextVar[dict[str, Any] | None] = ContextVar("replay_attach_job", default=None)


class JobFields(logging.Filter):
    """Adds the current job's ids to every record logged while it runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _job.get()
        if fields:
            for name, value in fields.items():
                if name != "started" and not hasattr(record, name):
                    setattr(record, name, value)
            record.duration_ms = round((time.monotonic() - fields["started"]) * 1000, 1)
        return True


@contextlib.contextmanager
def job_fields(**fields: Any) -> Iterator[dict[str, Any]]:
    """Within the block, every log record carries ``fields`` (None values left out); the
    dict yielded takes more as the job learns them."""
    current = {k: v for k, v in fields.items() if v is not None} | {"started": time.monotonic()}
    token = _job.set(current)
    try:
        yield current
    finally:
        _job.reset(token)


def log_format() -> str:
    chosen = os.environ.get(LOG_FORMAT_ENV, "text").strip().lower() or "text"
    return chosen if chosen in LOG_FORMATS else "text"


def formatter(fmt: str | None = None) -> logging.Formatter:
    # Neither format shows where a line was logged from: skip the stack walk that
    # logging makes for every record to find it (the logging HOWTO's "Optimization").
    logging._srcfile = None
    if (fmt or log_format()) == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """One handler on the root logger, in the chosen format, with the job's fields."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter())
    handler.addFilter(JobFields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
