"""Single sign-on to the panel through the OpenID Connect provider named in the ``oidc_*`` settings.

``GET /admin/sso/start`` (the login page's "Sign in with ..." button) sends the browser to the provider
with a fresh state, nonce and PKCE verifier, kept in a signed cookie of its own;
``GET /admin/sso/callback`` checks the state, has :mod:`hub.oidc` exchange the code and verify the ID
token, maps the claims to a role and begins a panel session like a password login (same cookie, CSRF
tokens, idle timeout and logout). Every outcome of a callback, accepted or refused, is an audit event.

Why a cookie of its own: the panel's session cookie is ``SameSite=Strict``, so the browser does not send
it on the provider's redirect back, a cross-site navigation. The flow cookie is ``SameSite=Lax``,
scoped to ``/admin/sso/``, lives ten minutes and is spent by the first callback. For the same reason
the callback answers with a page that moves on to the panel (``Refresh``) instead of a redirect: a
redirect would still belong to the cross-site navigation, and the new session cookie would not go with it.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from authlib.common.security import generate_token
from flask import Flask, abort, current_app, redirect, render_template, request, session, url_for
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from hub import oidc
from hub.admin.blueprint import bp
from hub.errors import HubError
from hub.store import auditlog, clock

FLOW_COOKIE = "cti_hub_sso"
FLOW_PATH = "/admin/sso/"
FLOW_SECONDS = 600


def init_app(app: Flask) -> None:
    """Read and check the SSO settings once; the routes answer 404 while SSO is off."""
    app.extensions["cti_hub_oidc"] = oidc.load(app.config["HUB"])


def _settings() -> oidc.OidcSettings:
    settings = current_app.extensions.get("cti_hub_oidc")
    if settings is None:
        abort(404, "Single sign-on is not configured on this hub.")
    return settings


@bp.context_processor
def _sso_globals() -> dict[str, Any]:
    settings = current_app.extensions.get("cti_hub_oidc")
    return {"sso_provider": settings.provider_name if settings else None}


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.secret_key), salt="cti-hub admin sso flow")


def _safe_next(target: str | None) -> str:
    """The panel page to land on: only a path inside the panel (as the password login allows)."""
    target = target or ""
    if not target.startswith("/admin/") or "\\" in target or not target.isprintable():
        return url_for("admin.dashboard")
    return target


def _page(status: int, title: str, message: str, target: str | None = None) -> Response:
    body = render_template("admin/sso.html", status=status, title=title, message=message, target=target)
    response = current_app.make_response((body, status))
    if target:
        response.headers["Refresh"] = f"0; url={target}"
    return response


@bp.get("/sso/start")
def sso_start() -> Response:
    settings = _settings()
    flow = {
        "state": generate_token(32),
        "nonce": generate_token(32),
        "verifier": generate_token(64),
        "next": _safe_next(request.args.get("next")),
    }
    try:
        url = oidc.Provider(settings).authorization_url(flow["state"], flow["nonce"], flow["verifier"])
    except oidc.ProviderError as exc:
        current_app.logger.warning("single sign-on unavailable: %s", exc.message)
        return _page(exc.status, exc.title, exc.message + " Try again later, or log in with a local account.")
    response = redirect(url)
    response.set_cookie(
        FLOW_COOKIE,
        _serializer().dumps(flow),
        max_age=FLOW_SECONDS,
        path=FLOW_PATH,
        secure=bool(current_app.config["SESSION_COOKIE_SECURE"]) or request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    return response


def _flow() -> dict[str, str] | None:
    raw = request.cookies.get(FLOW_COOKIE, "")
    try:
        flow = _serializer().loads(raw, max_age=FLOW_SECONDS) if raw else None
    except BadData:
        return None
    return flow if isinstance(flow, dict) else None


def _sign_in(settings: oidc.OidcSettings) -> tuple[oidc.Identity, str]:
    """Check the provider's answer; return the accepted identity and the page to land on, or raise."""
    flow = _flow()
    if flow is None:
        raise oidc.FlowError(
            "This sign-in did not start in this browser, was already used, or took longer than "
            f"{FLOW_SECONDS // 60} minutes: start it again from the login page."
        )
    if not hmac.compare_digest(request.args.get("state", "").encode(), flow["state"].encode()):
        raise oidc.FlowError(
            "The answer from the sign-in provider does not belong to the sign-in this browser started "
            "(state mismatch): start again from the login page."
        )
    if request.args.get("error"):
        error = "".join(ch for ch in request.args.get("error", "") if ch.isprintable())[:60]
        detail = "".join(ch for ch in request.args.get("error_description", "") if ch.isprintable())[:200]
        raise oidc.SignInRefused(
            f"{settings.provider_name} did not sign you in ({error}{': ' if detail else ''}{detail})."
        )
    if not request.args.get("code"):
        raise oidc.FlowError("The answer from the sign-in provider carries no authorization code: start again.")
    claims = oidc.Provider(settings).claims(request.args["code"], flow["verifier"], flow["nonce"])
    return oidc.identity(settings, claims), flow["next"]


def _refusal(settings: oidc.OidcSettings, who: oidc.Identity) -> oidc.SignInRefused:
    values = ", ".join(who.values) if who.values else "absent"
    return oidc.SignInRefused(
        f"{settings.provider_name} signed you in as {who.name.removeprefix('sso:')}, but your "
        f"'{settings.role_claim}' claim ({values}) maps to no role in this panel, so you may not use it. "
        "Ask a hub administrator to map one of these values to a role (oidc_role_map)."
    )


def _audit(settings: oidc.OidcSettings, who: oidc.Identity | None, action: str, reason: str = "") -> None:
    detail: dict[str, Any] = {"issuer": settings.issuer}
    if who is not None:
        detail.update(subject=who.subject, email=who.email, role=who.role, claim=settings.role_claim)
        detail["values"] = list(who.matched if who.role else who.values)
    if reason:
        detail["reason"] = reason[:400]
    with current_app.extensions["cti_hub"].session() as s:
        auditlog.audit(
            s,
            who.name if who else "sso:-",
            action,
            who.subject if who else "",
            detail,
            source=request.remote_addr or "",
        )


@bp.get("/sso/callback")
def sso_callback() -> Response:
    settings = _settings()
    who: oidc.Identity | None = None
    try:
        who, target = _sign_in(settings)
        if who.role is None:
            raise _refusal(settings, who)
    except HubError as exc:
        if isinstance(exc, oidc.ProviderError):
            current_app.logger.warning("single sign-on failed: %s", exc.message)
        _audit(settings, who, "admin.sso_refused", exc.message)
        response = _page(exc.status, exc.title, exc.message)
    else:
        _audit(settings, who, "admin.sso_login")
        session.clear()
        session.permanent = True
        session["user"] = {
            "id": None,
            "name": who.name,
            "role": who.role,
            "sso": {"iss": who.issuer, "sub": who.subject, "via": list(who.matched[:5])},
        }
        session["seen"] = int(time.time())
        session["since"] = clock.now_us()  # a logout after this moment ends the session (oidc.session_user)
        message = f"Signed in with {settings.provider_name} as {who.name} ({who.role})."
        response = _page(200, "Signed in", message, target)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response
