"""The TAXII 2.1 API: medallion's blueprints on the hub's app, answered by ``HubBackend``."""

from __future__ import annotations

import functools

import medallion
from flask import Flask, current_app, g, request
from medallion import auth as medallion_auth

from hub import auth, ratelimit
from hub.auth import Principal
from hub.taxii import backend, compat
from hub.taxii.backend import HubBackend


def _verify_password(username: str, password: str) -> Principal | None:
    """medallion's auth callback: the calling partner's principal, or None for a 401."""
    return _caller()


def _caller() -> Principal | None:
    """Authenticate this request once (the POST guard in ``compat`` may ask before medallion does)."""
    if "hub_caller" not in g:
        # flask-httpauth only understands Basic; the header is read here so Bearer/Token work too. The
        # request's read session (see backend) serves authentication too: one transaction per request.
        g.hub_caller = auth.authenticate(
            current_app.extensions["cti_hub"],
            backend.read_session(),
            request.headers.get("Authorization", ""),
            request.remote_addr or "",
            functools.partial(ratelimit.check, current_app),
            auth.certificate_of(request.environ, current_app.config["HUB"]),
        )
    return g.hub_caller


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("hub_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Serve TAXII 2.1 on ``app``."""
    # medallion reads these three attributes of the Flask app (its get_pwd still reads users_backend;
    # keys live in the database).
    app.users_backend = {}  # type: ignore[attr-defined]
    app.taxii_config = {"max_page_size": app.config["HUB"]["max_page_size"]}  # type: ignore[attr-defined]
    app.medallion_backend = HubBackend()  # type: ignore[attr-defined]
    medallion_auth.verify_password(_verify_password)
    medallion.register_blueprints(app)
    compat.init_app(app, _caller)
    app.teardown_request(_close_session)
