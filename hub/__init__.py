"""cti-hub: a TAXII 2.1 hub that shares threat intelligence under per-partner sharing rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None, *, settings_file: str | None = None) -> Flask:
    """Build the hub's Flask app: settings, database, TAXII API and operational endpoints."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from hub import config as hub_config
    from hub import db, taxii
    from hub.runtime import Hub

    settings = hub_config.load(settings_file, config)
    app = Flask(__name__)
    app.config["HUB"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 512 * 1024 * 1024
    hub = Hub(settings)
    app.extensions["cti_hub"] = hub
    if settings["trusted_proxies"]:
        n = settings["trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    taxii.init_app(app)
    from hub import openapi

    openapi.init_app(app)
    from hub import admin

    admin.init_app(app)
    from feeds import export as feed_export

    feed_export.init_app(app)
    from hub import ops

    ops.init_app(app)
    from feeds import schedule

    schedule.init_app(app)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        ok = db.is_current(hub.engine)
        body = '{"status":"ready"}' if ok else '{"status":"migrations pending: run cti-hub db upgrade"}'
        return Response(body, status=200 if ok else 503, mimetype="application/json")

    return app
