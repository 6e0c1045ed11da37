"""WSGI entry point for gunicorn: ``gunicorn hub.wsgi:app``; log lines are JSON (``hub.logs``)."""

from hub import create_app, logs

logs.configure()
app = create_app()
