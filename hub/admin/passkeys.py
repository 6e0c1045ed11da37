"""The panel's security-key pages: the key step of a login, and enrolling and removing the account's keys.

Each page that asks the browser for a key carries the ceremony's options (with a new challenge from
:mod:`hub.passkeys`) in a ``data-webauthn-*`` attribute; ``static/webauthn.js`` calls
``navigator.credentials.create`` or ``get`` with them and posts the answer as JSON in a hidden field.
Enrolling and removing a key need the current password first, like a new authenticator does.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, session, url_for

from hub import passkeys
from hub.admin import forms, signin
from hub.admin.blueprint import bp, current_user, log_in, pending_login, step_url
from hub.admin.mfa import _hub, _source, account_page, reauthenticate

NO_PUBLIC_URL = (
    "Security keys are off on this hub: they need the setting public_url (the address browsers use for "
    "the panel), which names the relying party a key is enrolled with."
)


def _rp() -> passkeys.RelyingParty | None:
    return passkeys.relying_party(_hub().settings)


# --------------------------------------------------------------------- the key step of a login


@bp.route("/login/key", methods=["GET", "POST"])
def login_key() -> Any:
    """A login's second step with a security key: for accounts with keys (beside or instead of TOTP)."""
    pending = pending_login()
    if pending is None or pending["step"] not in ("totp", "key"):
        return redirect(step_url(pending) if pending else url_for("admin.dashboard"))
    with _hub().session(write=False) as s:
        has_keys = passkeys.has_keys(s, pending["id"])
    if not has_keys:  # none enrolled, or all removed since the password step
        if pending["step"] == "totp":
            return redirect(url_for("admin.login_code"))
        session.pop("pending", None)
        flash("This account has no security key any more: log in again.")
        return redirect(url_for("admin.login"))
    rp = _rp()
    form = forms.KeyAnswerForm()
    error = "" if rp is not None else NO_PUBLIC_URL
    if rp is not None and form.validate_on_submit():
        with _hub().session() as s:
            user, error = signin.security_key(s, rp, pending, form.credential.data or "", _source())
        if user is not None:
            return log_in(user, pending["next"])
    options = ""
    if rp is not None:
        with _hub().session() as s:  # a new challenge for every showing: the one before is spent or replaced
            options = passkeys.authentication_options(s, rp, pending["id"])
    body = render_template(
        "admin/key_login.html",
        form=forms.KeyAnswerForm(formdata=None),
        options=options,
        error=error or (form.credential.errors[0] if form.credential.errors else ""),
        username=pending["name"],
        code_too=pending["step"] == "totp",
    )
    return body, 401 if error else 400 if form.errors else 200


@bp.route("/login/enrol/key", methods=["GET", "POST"])
def login_enrol_key() -> Any:
    """A login's forced enrolment (see ``login_enrol``) with a security key instead of an authenticator app.

    Like the authenticator, the key is enrolled for the pending login on the password just given; the
    login is then complete.
    """
    pending = pending_login()
    if pending is None or pending["step"] != "enrol":
        return redirect(step_url(pending) if pending else url_for("admin.dashboard"))
    rp = _rp()
    if rp is None:
        flash(NO_PUBLIC_URL)
        return redirect(url_for("admin.login_enrol"))
    form = forms.KeyFirstForm()
    error = ""
    if form.validate_on_submit():
        with _hub().session() as s:
            user, error = signin.enrol_key(s, rp, pending, form.credential.data or "", form.name.data or "", _source())
        if user is not None:
            response = log_in(user, pending["next"])
            flash("Security key enrolled: logins of this account now ask for it after the password.")
            return response
        if error == signin.ENROLLED_MEANWHILE:
            session.pop("pending", None)
            flash(error)
            return redirect(url_for("admin.login"))
    with _hub().session() as s:  # a new challenge for every showing: the one before is spent or replaced
        account = signin.account(s, pending["id"])
        if account is None:
            session.pop("pending", None)
            return redirect(url_for("admin.login"))
        options = passkeys.registration_options(s, rp, account)
    body = render_template(
        "admin/key_enrol.html",
        form=forms.KeyFirstForm(formdata=None, data={"name": form.name.data or ""}),
        options=options,
        action=url_for("admin.login_enrol_key"),
        forced=True,
        error=error or (form.credential.errors[0] if form.credential.errors else ""),
    )
    return body, 401 if error else 400 if form.errors else 200


# --------------------------------------------------------------------- the account's keys


@bp.post("/account/keys")
def key_setup() -> Any:
    """After the current password: the browser asks the new key (``navigator.credentials.create``)."""
    form = forms.KeyEnrolForm(prefix="key")
    rp = _rp()
    if rp is None:
        return account_page(NO_PUBLIC_URL)
    error = reauthenticate(form)
    if error:
        return account_page(error)
    with _hub().session() as s:
        account = signin.account(s, current_user()["id"])
        if account is None:
            return redirect(url_for("admin.login"))
        options = passkeys.registration_options(s, rp, account)
    confirm = forms.KeyConfirmForm(formdata=None, data={"name": form.name.data or ""})
    return render_template(
        "admin/key_enrol.html",
        form=confirm,
        options=options,
        name=form.name.data or "",
        action=url_for("admin.key_confirm"),
    )


@bp.post("/account/keys/confirm")
def key_confirm() -> Any:
    """The new key's answer: enrolled if it answers the challenge of this account, origin and RP id."""
    form = forms.KeyConfirmForm()
    rp = _rp()
    if rp is None:
        return account_page(NO_PUBLIC_URL)
    if not form.validate():
        return account_page("The security key gave no answer: start the enrolment again.")
    with _hub().session() as s:
        account = signin.account(s, current_user()["id"])
        if account is None:
            return redirect(url_for("admin.login"))
        key, error = passkeys.register(
            s, rp, account, form.credential.data or "", form.name.data or "", source=_source()
        )
        name = key.name if key else ""
    if error:
        return account_page(error + " Start the enrolment again.")
    flash(f"Security key “{name}” enrolled: logins can use it as the second factor.")
    return redirect(url_for("admin.account_security"))


@bp.post("/account/keys/remove")
def key_remove() -> Any:
    """After the current password: take one security key off the account."""
    form = forms.KeyRemoveForm(prefix="remove")
    with _hub().session(write=False) as s:
        form.key.choices = [(k.id, k.name) for k in passkeys.keys(s, current_user()["id"])]
    error = reauthenticate(form)
    if error:
        return account_page(error if form.password.data else "Choose a key and type your current password.")
    with _hub().session() as s:
        account = signin.account(s, current_user()["id"])
        if account is None:
            return redirect(url_for("admin.login"))
        name = passkeys.remove(s, account, int(form.key.data), actor=account.username, source=_source())
    flash(f"Security key “{name}” removed.")
    return redirect(url_for("admin.account_security"))
