"""The second factor of panel accounts: TOTP authenticators (RFC 6238) and one-time recovery codes.

- **Secrets** are 160 random bits (base32), shown once as an ``otpauth://`` URI and QR code, and stored
  sealed (Fernet) under a key derived from the hub secret, so that a copy of the database alone does
  not yield them. Rotating the hub secret makes every sealed secret unreadable: each account then logs
  in with a recovery code and enrols again (``cti-hub admin totp NAME`` does it on the server).
- **Codes** are 6 digits over 30-second steps; one step of clock drift either way is accepted. The
  step of each accepted code is remembered per account, and a code of the same or an earlier step is
  refused, so an observed code cannot be replayed, not even within its 30 seconds.
- **Recovery codes** (10 per enrolment, 80 random bits each) are shown once and kept as salted
  SHA-256: they are high-entropy, so a slow password hash would add nothing. Each works once.

Every change and every accepted or refused code is an event in the hash-chained audit trail. The
caller (the panel's sign-in, the CLI, the demo) holds the transaction; nothing here commits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from hub import models as m
from hub.errors import BadRequest, NotFound
from hub.store import auditlog, clock

ISSUER = "cti-hub"
STEP_SECONDS = 30
DRIFT_STEPS = 1  # codes of one step before or after now are accepted (phone clocks drift)
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper and typed
_RECOVERY_LENGTH = 16  # 16 symbols of 31: 79 bits

CodeResult = Literal["accepted", "wrong", "replayed", "unreadable", "none"]


@dataclass(frozen=True)
class Enrolment:
    """What is shown once when an authenticator is enrolled: the URI to scan and the recovery codes."""

    username: str
    secret: str
    uri: str
    recovery_codes: list[str]


# --------------------------------------------------------------------- secrets and codes


def new_secret() -> str:
    """A new TOTP secret: 160 random bits in base32, as RFC 4226 recommends."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg_data_uri(uri: str) -> str:
    """The URI as a QR code, an SVG ``data:`` URI for an ``<img>`` (the panel's CSP allows ``data:`` images)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def qr_terminal(uri: str) -> str:
    """The URI as a QR code drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(uri, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def code_at(secret: str, when: float | None = None) -> str:
    """The code an authenticator shows at ``when`` (now by default)."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).at(time.time() if when is None else when)


def matching_step(secret: str, code: str, when: float | None = None) -> int | None:
    """The time step, within the drift allowed around ``when``, whose code is ``code``; None if none."""
    code = normalise(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now_step = int(time.time() if when is None else when) // STEP_SECONDS
    found = None
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        # Compare every candidate (no early exit), each in constant time.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def normalise(code: str) -> str:
    """A typed code without spaces and dashes, in lower case."""
    return "".join(code.split()).replace("-", "").lower()


def looks_like_totp(code: str) -> bool:
    """Six digits: an authenticator's code rather than a recovery code."""
    typed = normalise(code)
    return len(typed) == 6 and typed.isdigit()


def _fernet(pepper: str) -> Fernet:
    key = hmac.new(pepper.encode(), b"cti-hub admin totp secrets", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal(pepper: str, secret: str) -> str:
    """Encrypt a TOTP secret (or a candidate secret carried in the panel's signed session cookie)."""
    return _fernet(pepper).encrypt(secret.encode()).decode()


def unseal(pepper: str, sealed: str, ttl_seconds: int | None = None) -> str | None:
    """Decrypt a sealed secret; None if it is not one of this hub secret's (or older than ``ttl_seconds``)."""
    try:
        return _fernet(pepper).decrypt(sealed.encode(), ttl=ttl_seconds).decode()
    except (InvalidToken, ValueError):
        return None


def _recovery_hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{normalise(code)}".encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4))


# --------------------------------------------------------------------- accounts


def account(session: Session, username: str) -> m.AdminUser:
    found = session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no administrator account named '{username}'")
    return found


def has_totp(session: Session, user_id: int) -> bool:
    return session.get(m.AdminTotp, user_id) is not None


def status(session: Session, user_id: int) -> dict[str, int | bool]:
    """Whether the account has an authenticator, since when, and how many recovery codes are left."""
    row = session.get(m.AdminTotp, user_id)
    left = session.scalars(
        select(m.AdminRecoveryCode.id).where(
            m.AdminRecoveryCode.user_id == user_id, m.AdminRecoveryCode.used_us.is_(None)
        )
    ).all()
    return {"enrolled": row is not None, "enrolled_us": row.enrolled_us if row else 0, "recovery_left": len(left)}


def enrol(
    session: Session,
    pepper: str,
    user: m.AdminUser,
    secret: str,
    *,
    actor: str,
    source: str = "",
    confirmed_step: int = 0,
    via: str = "panel",
) -> Enrolment:
    """Give ``user`` the authenticator ``secret`` (replacing any earlier one) and new recovery codes.

    ``confirmed_step`` is the step of the code the user typed to prove the authenticator works (the
    panel asks for one); that code counts as used. The CLI and the demo enrol without one.
    """
    row = session.get(m.AdminTotp, user.id)
    replaced = row is not None
    if row is None:
        row = m.AdminTotp(user_id=user.id)
        session.add(row)
    row.sealed_secret = seal(pepper, secret)
    row.last_step = confirmed_step
    row.enrolled_us = clock.now_us()
    codes = _replace_recovery_codes(session, user.id)
    auditlog.audit(
        session,
        actor,
        "admin.mfa_reset" if replaced else "admin.mfa_enrolled",
        user.username,
        {"factor": "totp", "via": via, "recovery_codes": len(codes)},
        source=source,
    )
    return Enrolment(user.username, secret, provisioning_uri(secret, user.username), codes)


def enrol_new(session: Session, pepper: str, username: str, *, actor: str, via: str) -> Enrolment:
    """Enrol a new random authenticator for ``username`` on the server (CLI, demo): shown once."""
    return enrol(session, pepper, account(session, username), new_secret(), actor=actor, via=via)


def confirm_candidate(
    session: Session, pepper: str, user: m.AdminUser, secret: str, code: str, *, source: str
) -> Enrolment:
    """Enrol ``secret`` once ``code`` proves the user's authenticator holds it; a wrong code changes nothing."""
    step = matching_step(secret, code)
    if step is None:
        raise BadRequest("that code does not match the new authenticator: check its clock and type the current code")
    return enrol(session, pepper, user, secret, actor=user.username, source=source, confirmed_step=step)


def remove(session: Session, username: str, *, actor: str, source: str = "") -> bool:
    """Take the authenticator and the recovery codes off ``username``; False if it had none."""
    user = account(session, username)
    had = _changed(session, delete(m.AdminTotp).where(m.AdminTotp.user_id == user.id)) > 0
    session.execute(delete(m.AdminRecoveryCode).where(m.AdminRecoveryCode.user_id == user.id))
    if had:
        auditlog.audit(session, actor, "admin.mfa_removed", username, {"factor": "totp"}, source=source)
    return had


def regenerate_recovery_codes(session: Session, user: m.AdminUser, *, actor: str, source: str = "") -> list[str]:
    """Replace the account's recovery codes (the old ones stop working) and return the new ones, once."""
    if not has_totp(session, user.id):
        raise BadRequest("recovery codes go with an authenticator: enrol one first")
    codes = _replace_recovery_codes(session, user.id)
    auditlog.audit(
        session, actor, "admin.mfa_recovery_regenerated", user.username, {"recovery_codes": len(codes)}, source=source
    )
    return codes


def _replace_recovery_codes(session: Session, user_id: int) -> list[str]:
    session.execute(delete(m.AdminRecoveryCode).where(m.AdminRecoveryCode.user_id == user_id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    now = clock.now_us()
    for code in codes:
        salt = secrets.token_hex(16)
        session.add(
            m.AdminRecoveryCode(user_id=user_id, salt=salt, code_hash=_recovery_hash(salt, code), created_us=now)
        )
    session.flush()
    return codes


# --------------------------------------------------------------------- checking a code at login


def check_code(
    session: Session, pepper: str, user_id: int, code: str, when: float | None = None
) -> tuple[CodeResult, int]:
    """Check an authenticator code for the account; return (result, its time step).

    The step is taken with one conditional UPDATE (``last_step < step``), so of two requests racing
    with the same code, on any engine, exactly one wins.
    """
    row = session.get(m.AdminTotp, user_id)
    if row is None:
        return "none", 0
    secret = unseal(pepper, row.sealed_secret)
    if secret is None:
        return "unreadable", 0
    step = matching_step(secret, code, when)
    if step is None:
        return "wrong", 0
    taken = _changed(
        session,
        update(m.AdminTotp)
        .where(m.AdminTotp.user_id == user_id, m.AdminTotp.last_step < step)
        .values(last_step=step)
        .execution_options(synchronize_session=False),
    )
    session.expire(row)
    return ("accepted" if taken == 1 else "replayed"), step


def use_recovery_code(session: Session, user_id: int, code: str) -> bool:
    """Spend one of the account's unused recovery codes; False if ``code`` is none of them."""
    typed = normalise(code)
    if len(typed) != _RECOVERY_LENGTH:
        return False
    unused = session.execute(
        select(m.AdminRecoveryCode.id, m.AdminRecoveryCode.salt, m.AdminRecoveryCode.code_hash).where(
            m.AdminRecoveryCode.user_id == user_id, m.AdminRecoveryCode.used_us.is_(None)
        )
    ).all()
    match = None
    for row_id, salt, digest in unused:
        if hmac.compare_digest(_recovery_hash(salt, typed), digest):
            match = row_id
    if match is None:
        return False
    spent = _changed(
        session,
        update(m.AdminRecoveryCode)
        .where(m.AdminRecoveryCode.id == match, m.AdminRecoveryCode.used_us.is_(None))
        .values(used_us=clock.now_us())
        .execution_options(synchronize_session=False),
    )
    return spent == 1


def _changed(session: Session, statement: Any) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed."""
    return cast(CursorResult, session.execute(statement)).rowcount or 0
