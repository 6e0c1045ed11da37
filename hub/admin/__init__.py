"""The administration panel at ``/admin/``: accounts, sharing configuration, previews and audit.

:mod:`hub.admin.blueprint` holds the blueprint and its security (log-in, CSRF, roles, headers).
The pages and their queries go by panel area: :mod:`hub.admin.views_accounts` and
:mod:`hub.admin.data_accounts` (log-in, partners, API keys), :mod:`hub.admin.views_sharing` and
:mod:`hub.admin.data_sharing` (trust groups, collections; the sharing previews come from
:mod:`hub.admin.preview`, which also holds the what-if of a rule change),
:mod:`hub.admin.views_records` and :mod:`hub.admin.data_records` (audit log, objects),
:mod:`hub.admin.feedback_views` and :mod:`hub.admin.data_feedback` (sightings and false-positive reports:
an object's timeline, drawn by :mod:`hub.admin.timeline`, and tables, what a partner sent back, and an
originator's revoke and new version through :mod:`hub.revisions`).
:mod:`hub.admin.views` holds what every page shares and the dashboard (queries in
:mod:`hub.admin.dashboard`), :mod:`hub.admin.display` the formatting of times and TLP levels,
:mod:`hub.admin.sso` single sign-on (OpenID Connect), :mod:`hub.admin.signin` the lockout and the
second step of a login, :mod:`hub.admin.mfa` its pages and the account's own second factor,
:mod:`hub.admin.passkeys` the same for security keys (WebAuthn).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Flask

from hub.admin import (  # noqa: F401 - the pages
    feedback_views,
    mfa,
    passkeys,
    sso,
    views,
    views_accounts,
    views_records,
    views_sharing,
)
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
    sso.init_app(app)

    app.register_blueprint(bp)
