"""Panel sign-in: the password step, the failed-login counters both steps spend, and the second factor.

A login is the password (``login``), then, for an account with a second factor, a TOTP code or a
recovery code (``second_factor``) or a security key's answer (``security_key``). Every failure of either
step counts against the account and against the source address; past ``LOCKOUT_FAILURES`` (account)
or ``SOURCE_FAILURES`` (address) within ``LOCKOUT_WINDOW_US`` both steps refuse, even with the right
password or code. The account's counter is cleared only by a complete login: a correct password alone
does not reset the guesses left at the code (or key) step.
"""

from __future__ import annotations

import functools
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub import mfa, passkeys
from hub import models as m
from hub.errors import BadRequest
from hub.store import auditlog, logins

LOCKOUT_FAILURES = 5  # per account
SOURCE_FAILURES = 20  # per source address: offices share addresses, so higher than per account
LOCKOUT_WINDOW_US = 15 * 60 * 1_000_000
_HASHER = PasswordHasher()
ENROLLED_MEANWHILE = "This account has a second factor already: log in again."

_REFUSED = {
    "wrong": "Wrong code.",
    "replayed": "That code was used already: wait for the next one from your authenticator.",
    "unreadable": "This account's authenticator cannot be checked since the hub secret changed: "
    "log in with a recovery code, then enrol the authenticator again.",
    "none": "Wrong code.",
}


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the account does not exist, so both cases cost the same time."""
    return _HASHER.hash("no such account: constant-time dummy")


def login(
    session: Session, username: str, password: str, source: str, *, mfa_required: bool = False
) -> tuple[dict[str, Any] | None, str]:
    """Check a panel login's password; return (the session's user, "") or (None, why), counting failures.

    An account with a second factor, or without one while ``mfa_required``, is not logged in yet: its
    user carries ``second_step`` ("totp", "key" or "enrol"): ``second_factor``, ``security_key`` or the
    enrolment page completes it.
    """
    why = locked(session, username, source)
    if why:
        return None, why
    user = session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none()
    try:
        _HASHER.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        failed(session, username, source)
        auditlog.audit(session, username[:100] or "-", "admin.login_failed", username, source=source)
        return None, "Wrong username or password."
    step = next_step(session, user.id, mfa_required)
    if step:
        if step == "enrol":  # the password is all this account has: it is proven
            succeeded(session, user.username)
        auditlog.audit(session, user.username, "admin.login_password", user.username, {"next": step}, source=source)
        return {"id": user.id, "name": user.username, "role": user.role, "second_step": step}, ""
    return complete(session, user, source), ""


def _counters(username: str, source: str) -> list[str]:
    return [f"admin-user:{username}"[:64], f"admin-ip:{source}"[:64]]


def locked(session: Session, username: str, source: str) -> str:
    """Why the account or the address may not try now (audited), or "" when it may."""
    for key, limit in zip(_counters(username, source), (LOCKOUT_FAILURES, SOURCE_FAILURES), strict=True):
        count, wait = logins.login_failures(session, key, LOCKOUT_WINDOW_US)
        if count >= limit:
            auditlog.audit(session, username[:100] or "-", "admin.login_locked", username, source=source)
            return f"Too many failed logins: try again in {wait // 60 + 1} minutes."
    return ""


def failed(session: Session, username: str, source: str) -> None:
    """Count one failed attempt against the account and the address."""
    for key in _counters(username, source):
        logins.record_login_failure(session, key, LOCKOUT_WINDOW_US)


def succeeded(session: Session, username: str) -> None:
    """Forget the account's failures (the address's stay: it may be guessing other accounts)."""
    session.execute(delete(m.LoginFailure).where(m.LoginFailure.source == _counters(username, "")[0]))


def next_step(session: Session, user_id: int, required: bool) -> str:
    """What a login needs after the right password: "totp" (a code, or a key if it has one too), "key"
    (security keys only), "enrol" (required, none yet) or ""."""
    if mfa.has_totp(session, user_id):
        return "totp"
    if passkeys.has_keys(session, user_id):
        return "key"
    return "enrol" if required else ""


def second_factor(
    session: Session, pepper: str, pending: dict[str, Any], code: str, source: str
) -> tuple[dict[str, Any] | None, str]:
    """Check the code typed after the password: (the session's user, "") or (None, why).

    Six digits are an authenticator code, anything else a recovery code. Each outcome is audited.
    """
    user = session.get(m.AdminUser, pending["id"])
    if user is None:
        return None, "Wrong code."
    name = user.username
    why = locked(session, name, source)
    if why:
        return None, why
    if mfa.looks_like_totp(code):
        result, step = mfa.check_code(session, pepper, user.id, code)
        if result != "accepted":
            failed(session, name, source)
            auditlog.audit(session, name, "admin.mfa_code_refused", name, {"reason": result}, source=source)
            return None, _REFUSED[result]
        auditlog.audit(session, name, "admin.mfa_code_accepted", name, {"step": step}, source=source)
        factor = "totp"
    elif mfa.use_recovery_code(session, user.id, code):
        left = mfa.status(session, user.id)["recovery_left"]
        auditlog.audit(session, name, "admin.mfa_recovery_used", name, {"left": left}, source=source)
        factor = "recovery"
    else:
        failed(session, name, source)
        auditlog.audit(session, name, "admin.mfa_code_refused", name, {"reason": "recovery"}, source=source)
        return None, "Wrong code."
    return complete(session, user, source, factor), ""


def security_key(
    session: Session, rp: passkeys.RelyingParty, pending: dict[str, Any], credential_json: str, source: str
) -> tuple[dict[str, Any] | None, str]:
    """Check a security key's answer after the password: (the session's user, "") or (None, why).

    A refused answer counts toward the lockout like a wrong code; each outcome is audited.
    """
    user = session.get(m.AdminUser, pending["id"])
    if user is None:
        return None, passkeys.refusal("unknown")
    why = locked(session, user.username, source)
    if why:
        return None, why
    result = passkeys.check_assertion(session, rp, user, credential_json, source=source)
    if result != "accepted":
        failed(session, user.username, source)
        return None, passkeys.refusal(result)
    return complete(session, user, source, "security-key"), ""


def enrol_key(
    session: Session, rp: passkeys.RelyingParty, pending: dict[str, Any], credential_json: str, name: str, source: str
) -> tuple[dict[str, Any] | None, str]:
    """Enrol the first security key of a login at its forced enrolment step, then complete the login.

    Returns (the session's user, "") or (None, why). A refused answer counts toward the lockout like a
    wrong code; an account that has a second factor by now (enrolled meanwhile) enrols nothing here.
    """
    user = session.get(m.AdminUser, pending["id"])
    if user is None:
        return None, "This account no longer exists."
    why = locked(session, user.username, source)
    if why:
        return None, why
    if next_step(session, user.id, True) != "enrol":
        return None, ENROLLED_MEANWHILE
    try:
        key, error = passkeys.register(session, rp, user, credential_json, name, source=source)
    except BadRequest as exc:  # not a credential at all: refused and counted like any other wrong answer
        detail = {"stage": "enrol", "reason": "malformed", "error": exc.message[:200]}
        auditlog.audit(session, user.username, "admin.passkey_refused", user.username, detail, source=source)
        key, error = None, f"The security key's answer was refused: {exc.message}."
    if key is None:
        failed(session, user.username, source)
        return None, error
    return complete(session, user, source, "security-key"), ""


def complete(session: Session, user: m.AdminUser, source: str, factor: str = "") -> dict[str, Any]:
    """End a successful login: clear the account's failures, audit it, return the session's user."""
    succeeded(session, user.username)
    detail = {"role": user.role, **({"second_factor": factor} if factor else {})}
    auditlog.audit(session, user.username, "admin.login", user.username, detail, source=source)
    return {"id": user.id, "name": user.username, "role": user.role}


def reauthenticate(session: Session, user_id: int, password: str, source: str) -> tuple[m.AdminUser | None, str]:
    """Check a logged-in account's password again, before its second factor changes; failures count."""
    user = session.get(m.AdminUser, user_id)
    if user is None:
        return None, "This account no longer exists."
    why = locked(session, user.username, source)
    if why:
        return None, why
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        failed(session, user.username, source)
        auditlog.audit(session, user.username, "admin.reauth_failed", user.username, source=source)
        return None, "Wrong password."
    return user, ""


def account(session: Session, user_id: int) -> m.AdminUser | None:
    """A panel account by id (None if it was deleted meanwhile)."""
    return session.get(m.AdminUser, user_id)
