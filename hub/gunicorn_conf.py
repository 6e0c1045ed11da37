"""gunicorn settings ``cti-hub serve`` starts it with (``-c python:hub.gunicorn_conf``): its logs as JSON."""

from hub.logs import GUNICORN_LOGCONFIG

logconfig_dict = GUNICORN_LOGCONFIG
