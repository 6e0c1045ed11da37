"""The TAXII 2.1 API: medallion's blueprints on the hub's app, answered by ``HubBackend``."""

from __future__ import annotations

import medallion
from flask import Flask, current_app, g, request
from medallion import auth as medallion_auth

from hub import auth, ratelimit, store
from hub.auth import Principal
from hub.taxii import backend, compat
from hub.taxii.backend import HubBackend


def _verify_password(username: str, password: str) -> Principal | None:
    """medallion's auth callback: return the calling partner's principal, or None for a 401."""
    hub = current_app.extensions["cti_hub"]
    settings = hub.settings
    # flask-httpauth only understands Basic; read the header ourselves so Bearer/Token work too.
    header = request.headers.get("Authorization", "")
    source = request.remote_addr or ""
    window = settings["login_failure_window_seconds"]
    # The request's read session (see backend) serves authentication too: one transaction per request.
    session = backend.read_session()
    found = auth.identify(session, hub.pepper, header, source)
    if not isinstance(found, auth.Principal):
        auth.check_rate(session, source, failure_limit=settings["login_failure_limit"], window_seconds=window)
    if isinstance(found, str):
        with hub.session() as session:
            auth.record_failure(session, header, source, found, window_seconds=window)
        return None
    if found is not None:
        ratelimit.check(current_app, found.key_id)
    if found is not None and auth.needs_touch(found):
        with hub.session() as session:
            store.touch_key(session, found.key_pk, store.now_us())
    return found


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
    compat.init_app(app)
    app.teardown_request(_close_session)
