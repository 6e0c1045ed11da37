"""The panel's second-factor pages: the code step of a login, enrolment, and the account's own page.

A login whose password was right but which still needs its second factor holds ``session["pending"]``
(see :func:`hub.admin.blueprint.log_in`) and reaches only ``login_code`` or ``login_enrol``; nothing
else in the panel until the step is done. A new authenticator's secret waits between the page that
shows it and the code that confirms it in ``session["candidate"]``, sealed under the hub secret (the
cookie is signed, not encrypted) and good for ``PENDING_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, session, url_for

from hub import mfa, passkeys
from hub.admin import forms, signin
from hub.admin.blueprint import PENDING_SECONDS, bp, current_user, landing, log_in, pending_login, step_url
from hub.errors import BadRequest
from hub.runtime import Hub


def _hub() -> Hub:
    return current_app.extensions["cti_hub"]


def _source() -> str:
    return request.remote_addr or ""


def _candidate() -> str | None:
    """The secret of the authenticator being enrolled in this session, if it has not lapsed."""
    sealed = session.get("candidate")
    return mfa.unseal(_hub().pepper, sealed, ttl_seconds=PENDING_SECONDS) if sealed else None


def _new_candidate() -> str:
    secret = mfa.new_secret()
    session["candidate"] = mfa.seal(_hub().pepper, secret)
    return secret


def _enrol_page(secret: str, username: str, action: str, form: forms.CodeForm, error: str = "") -> Any:
    uri = mfa.provisioning_uri(secret, username)
    forced = action == url_for("admin.login_enrol")
    body = render_template(
        "admin/mfa_enrol.html",
        form=form,
        secret=secret,
        uri=uri,
        qr=mfa.qr_svg_data_uri(uri),
        action=action,
        error=error,
        forced=forced,
        keys_available=forced and passkeys.relying_party(_hub().settings) is not None,
    )
    return body, 400 if error or form.errors else 200


# --------------------------------------------------------------------- the second step of a login


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Any:
    pending = pending_login()
    if pending is None or pending["step"] != "totp":
        return redirect(step_url(pending) if pending else url_for("admin.dashboard"))
    form = forms.CodeForm()
    error = ""
    if form.validate_on_submit():
        with _hub().session() as s:
            user, error = signin.second_factor(s, _hub().pepper, pending, form.code.data or "", _source())
        if user is not None:
            return log_in(user, pending["next"])
    status = 401 if error else 400 if form.errors else 200
    with _hub().session(write=False) as s:
        has_keys = passkeys.has_keys(s, pending["id"])
    body = render_template("admin/mfa_code.html", form=form, error=error, username=pending["name"], has_keys=has_keys)
    return body, status


@bp.route("/login/enrol", methods=["GET", "POST"])
def login_enrol() -> Any:
    """Enrolment that a login must go through when ``admin_mfa_required`` is on and the account has none."""
    pending = pending_login()
    if pending is None or pending["step"] != "enrol":
        return redirect(step_url(pending) if pending else url_for("admin.dashboard"))
    secret = _candidate() or _new_candidate()
    form = forms.CodeForm()
    if not form.validate_on_submit():
        return _enrol_page(secret, pending["name"], url_for("admin.login_enrol"), form)
    try:
        with _hub().session() as s:
            account = signin.account(s, pending["id"])
            if account is None:
                return redirect(url_for("admin.login"))
            enrolment = mfa.confirm_candidate(s, _hub().pepper, account, secret, form.code.data or "", source=_source())
            user = signin.complete(s, account, _source(), "totp")
    except BadRequest as exc:
        return _enrol_page(secret, pending["name"], url_for("admin.login_enrol"), form, exc.message)
    log_in(user, pending["next"])
    return render_template("admin/mfa_recovery.html", codes=enrolment.recovery_codes, onward=landing(pending["next"]))


# --------------------------------------------------------------------- the account's own second factor


@bp.get("/account")
def account_security() -> Any:
    return account_page()


def account_page(error: str = "") -> Any:
    """The account's own page: its authenticator, recovery codes and security keys (``error`` shown at the top)."""
    with _hub().session(write=False) as s:
        state = mfa.status(s, current_user()["id"])
        keys = [
            {"id": k.id, "name": k.name, "created_us": k.created_us, "last_used_us": k.last_used_us}
            for k in passkeys.keys(s, current_user()["id"])
        ]
    remove_form = forms.KeyRemoveForm(prefix="remove", formdata=None)
    remove_form.key.choices = [(k["id"], k["name"]) for k in keys]
    body = render_template(
        "admin/account.html",
        state=state,
        keys=keys,
        keys_available=passkeys.relying_party(_hub().settings) is not None,
        required=bool(_hub().settings["admin_mfa_required"]),
        setup_form=forms.ReauthForm(prefix="setup", formdata=None),
        codes_form=forms.ReauthForm(prefix="codes", formdata=None),
        key_form=forms.KeyEnrolForm(prefix="key", formdata=None),
        remove_form=remove_form,
        error=error,
    )
    return body, 400 if error else 200


@bp.post("/account/totp")
def mfa_setup() -> Any:
    """After the current password: a new authenticator to scan (the current one works until it is confirmed)."""
    form = forms.ReauthForm(prefix="setup")
    error = reauthenticate(form)
    if error:
        return account_page(error)
    secret = _new_candidate()
    return _enrol_page(secret, current_user()["name"], url_for("admin.mfa_confirm"), forms.CodeForm())


@bp.post("/account/totp/confirm")
def mfa_confirm() -> Any:
    form = forms.CodeForm()
    secret = _candidate()
    if secret is None:
        return account_page("The new authenticator was not confirmed in time: start again.")
    if not form.validate():
        return _enrol_page(secret, current_user()["name"], url_for("admin.mfa_confirm"), form)
    try:
        with _hub().session() as s:
            account = signin.account(s, current_user()["id"])
            if account is None:
                return redirect(url_for("admin.login"))
            enrolment = mfa.confirm_candidate(s, _hub().pepper, account, secret, form.code.data or "", source=_source())
    except BadRequest as exc:
        return _enrol_page(secret, current_user()["name"], url_for("admin.mfa_confirm"), form, exc.message)
    session.pop("candidate", None)
    return render_template(
        "admin/mfa_recovery.html", codes=enrolment.recovery_codes, onward=url_for("admin.account_security")
    )


@bp.post("/account/recovery-codes")
def mfa_recovery() -> Any:
    """After the current password: new recovery codes (the old ones stop working)."""
    form = forms.ReauthForm(prefix="codes")
    error = reauthenticate(form)
    if error:
        return account_page(error)
    try:
        with _hub().session() as s:
            account = signin.account(s, current_user()["id"])
            if account is None:
                return redirect(url_for("admin.login"))
            codes = mfa.regenerate_recovery_codes(s, account, actor=account.username, source=_source())
    except BadRequest as exc:
        return account_page(exc.message)
    return render_template("admin/mfa_recovery.html", codes=codes, onward=url_for("admin.account_security"))


def reauthenticate(form: forms.ReauthForm) -> str:
    """Check the current password typed into ``form``; the reason it is refused, or ""."""
    if not form.validate():
        return "Type your current password."
    with _hub().session() as s:
        user, error = signin.reauthenticate(s, current_user()["id"], form.password.data or "", _source())
    return "" if user is not None else error
