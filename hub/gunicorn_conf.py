"""gunicorn settings ``cti-hub serve`` starts it with (``-c python:hub.gunicorn_conf``).

Its logs go out as the hub's JSON (``hub.logs``), and the Prometheus multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``, which ``cti-hub serve`` sets) is emptied before the workers start, so
``/metrics`` adds up this run's workers and nothing left by an earlier one.
"""

import os
import shutil
from pathlib import Path
from typing import Any

from hub.logs import GUNICORN_LOGCONFIG

logconfig_dict = GUNICORN_LOGCONFIG


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        # Its contents, not the directory itself: it may be a mount point (a tmpfs in docker-compose.yml).
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
