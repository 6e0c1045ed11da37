"""The panel's blueprint and its security.

Security lives here, on the blueprint: every ``/admin/`` request needs a logged-in
account (except the login page and static files), every POST needs a valid CSRF
token and the ``admin`` role (auditors only read), every response carries strict
security headers, and errors render as HTML pages rather than TAXII JSON.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from hub import oidc
from hub.admin import data_accounts
from hub.errors import BadRequest, HubError
from hub.store import clock

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

SESSION_MINUTES = 30  # idle timeout of a panel login
PUBLIC_ENDPOINTS = {"admin.login", "admin.static", "admin.sso_start", "admin.sso_callback"}
# The second step of a login (hub.admin.mfa), open to a session whose password was right a moment ago.
PENDING_ENDPOINTS = {"admin.login_code", "admin.login_enrol", "admin.login_enrol_key", "admin.login_key"}
PENDING_SECONDS = 600  # time to type a code, or to install an authenticator app and enrol
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
csrf = CSRFProtect()
# The panel session key holding the primary's WAL position after this administrator's last change.
WAL_POSITION = "wal_lsn"


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request itself came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


@bp.before_request
def _guard() -> Response | None:
    """Log-in, session timeout, CSRF and role checks for every panel request."""
    g.admin_user = None
    # No text column can hold NUL (PostgreSQL refuses it): a parameter carrying one is refused here, once.
    if any("\x00" in key or "\x00" in value for key, value in request.values.items(multi=True)):
        raise BadRequest("a parameter of the request contains a NUL character")
    pending = pending_login()
    if request.endpoint in PUBLIC_ENDPOINTS or (pending and request.endpoint in PENDING_ENDPOINTS):
        if request.method == "POST":
            csrf.protect()
        return None
    if pending:  # the password was right, the second step is not done: nothing else opens
        return redirect(step_url(pending))
    user = session.get("user")
    now = int(time.time())
    expired = bool(user) and now - int(session.get("seen", 0)) > current_app.config["ADMIN_SESSION_MINUTES"] * 60
    if user and not expired:
        # Re-read the account: a deleted account or a changed role takes effect on the next request.
        with current_app.extensions["cti_hub"].session(write=False) as db_session:
            since = int(session.get("since", 0))
            if user.get("sso"):  # a single sign-on identity: no account row, its role comes from its claims
                user = oidc.session_user(db_session, current_app.extensions.get("cti_hub_oidc"), user, since)
            else:
                user = data_accounts.account(db_session, user["id"], since)
    if not user or expired:
        session.clear()
        return redirect(
            url_for(
                "admin.login",
                next=request.full_path.rstrip("?") if request.method == "GET" else None,
                expired=1 if expired else None,
            )
        )
    session["user"] = user
    session["seen"] = now
    g.admin_user = user
    if request.method == "POST":
        csrf.protect()
        if user["role"] != "admin" and request.endpoint != "admin.logout":
            abort(403, "the auditor role is read-only: only administrators can change the hub")
    return None


def pending_login() -> dict[str, Any] | None:
    """The login of this session that waits for its second factor, while it has not lapsed."""
    pending = session.get("pending")
    if not pending or "user" in session or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    return pending


def log_in(user: dict[str, Any], target: str) -> Response:
    """Start the session of a user whose login is complete, or send a half-done one to its second step.

    Either way the session is a new one: nothing (CSRF token included) carries over from the login page.
    """
    session.clear()
    step = user.pop("second_step", "")
    if step:
        session["pending"] = {**user, "step": step, "at": int(time.time()), "next": target}
        return redirect(step_url(session["pending"]))
    session.permanent = True
    session["user"] = user
    session["seen"] = int(time.time())
    session["since"] = clock.now_us()  # a logout after this moment ends the session (data.account)
    return redirect(landing(target))


def step_url(pending: dict[str, Any]) -> str:
    """The page of a pending login's second step: the code, the security key, or the enrolment of an authenticator."""
    pages = {"totp": "admin.login_code", "key": "admin.login_key"}
    return url_for(pages.get(pending["step"], "admin.login_enrol"))


def landing(target: str) -> str:
    """Where a login goes: the page it was sent from if that is a panel page, else the dashboard."""
    if not target.startswith("/admin/") or "\\" in target or not target.isprintable():
        return url_for("admin.dashboard")
    return target


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "admin.static":
        response.headers["Cache-Control"] = "no-store"
    _remember_changes()
    return response


def _remember_changes() -> None:
    """After a form is sent, keep the primary's WAL position: the next pages read only a replica that has it.

    An administrator who saves a change and lands on a list therefore sees the change, whatever replica
    serves the list (``hub.admin.views.reading``).
    """
    hub = current_app.extensions["cti_hub"]
    if request.method == "POST" and hub.replicas is not None and g.get("admin_user"):
        session[WAL_POSITION] = hub.wal_position()


def _error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render_template("admin/error.html", status=status, title=title, message=message), status


@bp.errorhandler(CSRFError)
def _on_csrf(error: CSRFError) -> tuple[str, int]:
    return _error_page(
        400,
        "Form expired",
        "This form has expired or did not come from this panel "
        f"({error.description}). Go back, reload the page and submit it again.",
    )


@bp.errorhandler(HTTPException)
def _on_http(error: HTTPException) -> tuple[str, int]:
    return _error_page(error.code or 500, error.name, error.description or error.name)


@bp.errorhandler(HubError)
def _on_hub_error(error: HubError) -> tuple[str, int]:
    return _error_page(error.status, error.title, error.message)


@bp.errorhandler(Exception)
def _on_unexpected(error: Exception) -> tuple[str, int]:
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return _error_page(500, "Internal error", "The panel failed to process the request; it has been logged.")


def current_user() -> dict[str, Any]:
    return g.admin_user
