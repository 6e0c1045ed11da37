"""Security keys and passkeys (WebAuthn) as the second factor of panel accounts, beside TOTP.

The ceremonies are py_webauthn's; this module keeps what they leave to the relying party:

- **The relying party** is the hub's ``public_url``: its host is the RP id and its scheme, host and port
  the only origin accepted. Without ``public_url`` security keys are off (a key is bound to its RP id,
  which the Host header of a request must not choose).
- **Challenges** (32 random bytes) are kept in the database, one per account and purpose, and are
  spent by a conditional DELETE before the response is checked, so each one is good once, on any
  worker, and only for ``CHALLENGE_SECONDS``.
- **Signature counters**: an assertion whose counter is not above the stored one (unless the key
  always reports 0) is refused as a sign of a cloned key; the new counter is stored with a conditional
  UPDATE, so of two assertions racing with one counter value only one wins.
- Attestation is ``none``: the hub trusts the key the account holder enrolled after typing their
  password, not a vendor's certificate.

Every enrolment, use, refusal and removal is an event in the hash-chained audit trail. The caller
(the panel, the CLI) holds the transaction; nothing here commits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_client_data_json
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hub import models as m
from hub.errors import BadRequest, NotFound
from hub.store import auditlog, clock

CHALLENGE_SECONDS = 300  # a challenge not answered within five minutes is refused
NAME_LENGTH = 100
MAX_KEYS = 20  # per account: enough for every key and phone an administrator owns
RP_NAME = "cti-hub"

Purpose = Literal["register", "login"]
AssertionResult = Literal["accepted", "challenge", "expired", "unknown", "wrong", "regressed"]

_REFUSED: dict[str, str] = {
    "challenge": "That security-key request was used already or is not this login's: try again.",
    "expired": "The security-key request expired (five minutes): try again.",
    "unknown": "That security key is not enrolled for this account.",
    "wrong": "The security key's answer was refused.",
    "regressed": "The security key's signature counter went backwards: it may have been cloned. "
    "It stays refused; use another factor and tell an administrator.",
}


@dataclass(frozen=True)
class RelyingParty:
    """Who the keys are enrolled with: the RP id (a host name) and the one origin the browser must report."""

    id: str
    origin: str
    name: str = RP_NAME


def relying_party(settings: dict[str, Any]) -> RelyingParty | None:
    """The relying party that ``public_url`` names; None when it is not set (security keys are off)."""
    public_url = str(settings.get("public_url") or "")
    if not public_url:
        return None
    parts = urlsplit(public_url)
    return RelyingParty(id=parts.hostname or "", origin=f"{parts.scheme}://{parts.netloc}".lower())


def refusal(result: str) -> str:
    """The message a refused assertion shows."""
    return _REFUSED.get(result, _REFUSED["wrong"])


# --------------------------------------------------------------------- keys of an account


def keys(session: Session, user_id: int) -> list[m.AdminWebauthnCredential]:
    """The account's security keys, oldest first."""
    return list(
        session.scalars(
            select(m.AdminWebauthnCredential)
            .where(m.AdminWebauthnCredential.user_id == user_id)
            .order_by(m.AdminWebauthnCredential.id)
        )
    )


def has_keys(session: Session, user_id: int) -> bool:
    found = session.scalar(
        select(m.AdminWebauthnCredential.id).where(m.AdminWebauthnCredential.user_id == user_id).limit(1)
    )
    return found is not None


def remove(session: Session, user: m.AdminUser, key_id: int, *, actor: str, source: str = "") -> str:
    """Take one security key off the account; return its name. An id of another account's key is not found."""
    key = session.get(m.AdminWebauthnCredential, key_id)
    if key is None or key.user_id != user.id:
        raise NotFound("no such security key on this account")
    name = key.name
    session.delete(key)
    _audit_removed(session, actor, user.username, [key], source)
    return name


def remove_all(session: Session, user: m.AdminUser, *, actor: str, source: str = "") -> int:
    """Take every security key off the account (a lost key); return how many there were."""
    found = keys(session, user.id)
    session.execute(delete(m.AdminWebauthnCredential).where(m.AdminWebauthnCredential.user_id == user.id))
    session.execute(delete(m.AdminWebauthnChallenge).where(m.AdminWebauthnChallenge.user_id == user.id))
    if found:
        _audit_removed(session, actor, user.username, found, source)
    return len(found)


def _audit_removed(
    session: Session, actor: str, username: str, removed: list[m.AdminWebauthnCredential], source: str
) -> None:
    detail = {
        "factor": "security-key",
        "keys": [{"name": k.name, "credential": _short(k.credential_id)} for k in removed],
    }
    auditlog.audit(session, actor, "admin.passkey_removed", username, detail, source=source)


def _short(credential_id: bytes) -> str:
    """A credential id as the audit trail names it: enough to tell keys apart, short enough to read."""
    return bytes_to_base64url(credential_id)[:16]


# --------------------------------------------------------------------- challenges


def _new_challenge(session: Session, user_id: int, purpose: Purpose) -> bytes:
    """A new challenge for the account and purpose; it replaces the one before (one open request each)."""
    now = clock.now_us()
    session.execute(
        delete(m.AdminWebauthnChallenge).where(
            (m.AdminWebauthnChallenge.expires_us <= now)
            | ((m.AdminWebauthnChallenge.user_id == user_id) & (m.AdminWebauthnChallenge.purpose == purpose))
        )
    )
    challenge = webauthn.helpers.generate_challenge()
    session.add(
        m.AdminWebauthnChallenge(
            challenge_hash=hashlib.sha256(challenge).hexdigest(),
            user_id=user_id,
            purpose=purpose,
            expires_us=now + CHALLENGE_SECONDS * 1_000_000,
        )
    )
    session.flush()
    return challenge


def _take_challenge(session: Session, user_id: int, purpose: Purpose, credential: dict[str, Any]) -> tuple[str, bytes]:
    """Spend the challenge the browser answered: ("", challenge), or ("challenge" / "expired", b"").

    The row goes in one conditional DELETE whatever the outcome, so a challenge never works twice.
    """
    try:
        client_data = parse_client_data_json(base64url_to_bytes(credential["response"]["clientDataJSON"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRequest(f"the security key's answer is not a WebAuthn credential ({exc})") from None
    challenge = client_data.challenge
    digest = hashlib.sha256(challenge).hexdigest()
    row = session.get(m.AdminWebauthnChallenge, digest)
    if row is None or row.user_id != user_id or row.purpose != purpose:
        return "challenge", b""
    expires = row.expires_us
    taken = _changed(
        session,
        delete(m.AdminWebauthnChallenge)
        .where(m.AdminWebauthnChallenge.challenge_hash == digest)
        .execution_options(synchronize_session=False),
    )
    session.expunge(row)
    if taken != 1:
        return "challenge", b""
    if expires <= clock.now_us():
        return "expired", b""
    return "", challenge


def parse_credential(text: str) -> dict[str, Any]:
    """The JSON the panel's script posts for a credential, as a mapping; anything else is a clear error."""
    try:
        credential = json.loads(text)
    except ValueError:
        raise BadRequest("the security key's answer is missing or not JSON") from None
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise BadRequest("the security key's answer is not a WebAuthn credential")
    return credential


# --------------------------------------------------------------------- enrolment


def registration_options(session: Session, rp: RelyingParty, user: m.AdminUser) -> str:
    """The options of ``navigator.credentials.create`` for a new key of ``user``, as JSON (a new challenge)."""
    if len(keys(session, user.id)) >= MAX_KEYS:
        raise BadRequest(f"this account has {MAX_KEYS} security keys already: remove one first")
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.username,
        user_id=f"cti-hub-admin:{user.id}".encode(),
        challenge=_new_challenge(session, user.id, "register"),
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED, user_verification=UserVerificationRequirement.PREFERRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=k.credential_id) for k in keys(session, user.id)],
    )
    return webauthn.options_to_json(options)


def register(
    session: Session, rp: RelyingParty, user: m.AdminUser, credential_json: str, name: str, *, source: str = ""
) -> tuple[m.AdminWebauthnCredential | None, str]:
    """Enrol the key that answered this account's registration challenge: (the key, "") or (None, why).

    A refused answer enrols nothing, but spends the challenge and is audited: the caller commits either way.
    """
    name = " ".join(name.split())[:NAME_LENGTH] or "Security key"
    credential = parse_credential(credential_json)
    problem, challenge = _take_challenge(session, user.id, "register", credential)
    if problem:
        _refused(session, user.username, "enrol", problem, source)
        return None, refusal(problem)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        _refused(session, user.username, "enrol", "wrong", source, str(exc))
        return None, f"The security key's answer was refused: {exc}"
    taken = select(m.AdminWebauthnCredential.id).where(
        m.AdminWebauthnCredential.credential_id == verified.credential_id
    )
    if session.scalar(taken) is not None:
        _refused(session, user.username, "enrol", "duplicate", source)
        return None, "This security key is enrolled already."
    key = m.AdminWebauthnCredential(
        user_id=user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name,
        created_us=clock.now_us(),
    )
    session.add(key)
    session.flush()
    auditlog.audit(
        session,
        user.username,
        "admin.passkey_enrolled",
        user.username,
        {"factor": "security-key", "name": name, "credential": _short(verified.credential_id), "via": "panel"},
        source=source,
    )
    return key, ""


# --------------------------------------------------------------------- login


def authentication_options(session: Session, rp: RelyingParty, user_id: int) -> str:
    """The options of ``navigator.credentials.get`` for a login of the account, as JSON (a new challenge)."""
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        challenge=_new_challenge(session, user_id, "login"),
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=[PublicKeyCredentialDescriptor(id=k.credential_id) for k in keys(session, user_id)],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return webauthn.options_to_json(options)


def check_assertion(
    session: Session, rp: RelyingParty, user: m.AdminUser, credential_json: str, *, source: str = ""
) -> AssertionResult:
    """Check a key's answer to this account's login challenge; every outcome but "accepted" is audited as refused.

    The caller counts a refusal toward the lockout and audits the login; "accepted" is audited here as
    ``admin.passkey_used``.
    """
    credential = parse_credential(credential_json)
    problem, challenge = _take_challenge(session, user.id, "login", credential)
    if problem:
        return _refused(session, user.username, "login", problem, source)
    try:
        raw_id = base64url_to_bytes(str(credential.get("rawId") or credential.get("id") or ""))
    except ValueError:
        raw_id = b""
    key = session.execute(
        select(m.AdminWebauthnCredential).where(
            m.AdminWebauthnCredential.user_id == user.id, m.AdminWebauthnCredential.credential_id == raw_id
        )
    ).scalar_one_or_none()
    if key is None:
        return _refused(session, user.username, "login", "unknown", source)
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        reason = "regressed" if "sign count" in str(exc).lower() else "wrong"
        return _refused(session, user.username, "login", reason, source, str(exc), key)
    count = m.AdminWebauthnCredential.sign_count
    # A key that counts nothing reports 0 every time; any other must move forward, even against a racer.
    unchanged_or_newer = count == 0 if verified.new_sign_count == 0 else count < verified.new_sign_count
    counted = _changed(
        session,
        update(m.AdminWebauthnCredential)
        .where(m.AdminWebauthnCredential.id == key.id, unchanged_or_newer)
        .values(sign_count=verified.new_sign_count, last_used_us=clock.now_us())
        .execution_options(synchronize_session=False),
    )
    session.expire(key)
    if counted != 1:
        return _refused(session, user.username, "login", "regressed", source, "", key)
    auditlog.audit(
        session,
        user.username,
        "admin.passkey_used",
        user.username,
        {"name": key.name, "credential": _short(key.credential_id), "sign_count": verified.new_sign_count},
        source=source,
    )
    return "accepted"


def _refused(
    session: Session,
    username: str,
    stage: str,
    reason: str,
    source: str,
    error: str = "",
    key: m.AdminWebauthnCredential | None = None,
) -> Any:
    detail: dict[str, Any] = {"stage": stage, "reason": reason}
    if error:
        detail["error"] = error[:200]
    if key is not None:
        detail["credential"] = _short(key.credential_id)
    auditlog.audit(session, username, "admin.passkey_refused", username, detail, source=source)
    return reason


def _changed(session: Session, statement: Any) -> int:
    """Run an UPDATE or DELETE and return how many rows it changed."""
    return cast(CursorResult, session.execute(statement)).rowcount or 0
