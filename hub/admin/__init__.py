"""The administration panel at ``/admin/``: accounts, sharing configuration, previews and audit.

:mod:`hub.admin.blueprint` holds the blueprint and its security (log-in, CSRF, roles, headers),
:mod:`hub.admin.views` the pages, :mod:`hub.admin.data` and :mod:`hub.admin.dashboard` their queries,
:mod:`hub.admin.preview` the what-if of a rule change; :mod:`hub.admin.signin` the lockout and the
second step of a login, :mod:`hub.admin.mfa` its pages and the account's own second factor.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask

from hub.admin import mfa, views  # noqa: F401 - registers the pages on the blueprint
from hub.admin.blueprint import SESSION_MINUTES, CookieSessions, bp, csrf


def init_app(app: Flask) -> None:
    """Serve the panel on ``app``."""
    settings = app.config["HUB"]
    app.secret_key = hmac.new(settings["secret_key"].encode(), b"cti-hub admin session", hashlib.sha256).hexdigest()
    app.config.setdefault("ADMIN_SESSION_MINUTES", SESSION_MINUTES)
    app.config.update(
        SESSION_COOKIE_NAME="cti_hub_admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_SECURE=settings.get("public_url", "").startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=app.config["ADMIN_SESSION_MINUTES"]),
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by ``_guard`` for /admin/ only: TAXII clients post without it
    )
    app.session_interface = CookieSessions()
    csrf.init_app(app)

    app.register_blueprint(bp)
