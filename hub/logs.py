"""One JSON log pipeline: the hub's lines, gunicorn's own and unhandled errors, one JSON object per line.

Every line carries ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; a line written while a
request is served also carries its ``request_id`` (the ``X-Request-ID`` the response returns) and the
calling ``partner``. Exceptions go in ``exc_info`` as text. Secrets never reach a log line: requests are
logged by rule and partner, never with headers, query strings or bodies (``hub.ops``).

The access log (``hub.access``) writes its JSON itself, one object per request; ``configure`` leaves it
as it is and formats everything else.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FIELDS = "%(ts)s %(level)s %(logger)s %(message)s"


class RequestContext(logging.Filter):
    """Add the request id and partner of the request being served, if any, to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_request_context

        if has_request_context():
            from hub.auth import Principal

            record.request_id = g.get("hub_request_id", "")
            caller = g.get("flask_httpauth_user") or g.get("hub_caller")
            record.partner = caller.slug if isinstance(caller, Principal) else ""
        return True


class Formatter(JsonFormatter):
    """``JsonFormatter`` with the hub's field names and UTC timestamps."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(FIELDS, *args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        log_data["level"] = record.levelname
        log_data["logger"] = record.name


def handler(stream: Any = None) -> logging.Handler:
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(Formatter())
    out.addFilter(RequestContext())
    return out


def configure(level: int = logging.INFO) -> None:
    """Send the root logger's lines (the hub's, Flask's, werkzeug's) as JSON to standard error, once."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, Formatter) for h in root.handlers):
        return
    root.addHandler(handler())
    root.setLevel(min(root.level or level, level) if root.level != logging.NOTSET else level)


# gunicorn's logging, as its ``logconfig_dict`` setting takes it: its error log in the same JSON.
GUNICORN_LOGCONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request": {"()": "hub.logs.RequestContext"}},
    "formatters": {"json": {"()": "hub.logs.Formatter"}},
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request"],
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}
