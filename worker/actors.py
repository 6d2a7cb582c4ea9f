"""The module dramatiq's worker processes import: ``worker.actors:broker``.

It builds the app from the configuration once per process, which registers
the ``attach_replay`` actor on the broker.
"""

from __future__ import annotations

from worker.broker import create_app
from worker.config import load_config

app = create_app(load_config())
broker = app.broker
