"""The module each dramatiq worker process imports: ``worker.worker_process:broker``.

Building the app from the configuration, once per process, registers the
``attach_replay`` actor on the broker that dramatiq then consumes from.
"""

from __future__ import annotations

from worker.app import create_app
from worker.config import load_config
from worker.logs import configure_logging
from worker.metrics import close_inherited_server

# dramatiq (told to skip its own) has pointed stderr at the pipe its parent reads.
configure_logging()
close_inherited_server()
app = create_app(load_config())
broker = app.broker
