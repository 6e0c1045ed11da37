"""The OpenAPI 3.1 description of the hub's HTTP API, served at ``/openapi.json``.

The document is a static file shipped in the package (``hub/openapi.json``): TAXII 2.1,
the flat feeds, the probes, ``/metrics`` and itself. It describes the protocol, not this
hub's data, so it needs no authentication and reveals nothing about partners, collections
or objects. ``tests/test_openapi.py`` fails when a route is not in it.
"""

from __future__ import annotations

from importlib import resources

from flask import Flask, Response


def document() -> bytes:
    """Return the OpenAPI document as stored."""
    return resources.files("hub").joinpath("openapi.json").read_bytes()


def init_app(app: Flask) -> None:
    """Serve the OpenAPI document on ``app``."""
    body = document()

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return Response(body, mimetype="application/json", headers={"Cache-Control": "public, max-age=3600"})
