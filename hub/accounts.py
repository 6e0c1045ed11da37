"""Accounts: partners' API keys (issue, rotate, revoke) and the admin panel's accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import auth
from hub import models as m
from hub.errors import BadRequest, NotFound
from hub.store import auditlog, clock


def create_key(
    session: Session,
    pepper: str,
    partner_slug: str,
    *,
    read_only: bool = False,
    expires_days: int | None = None,
    cidrs: str = "",
    label: str = "",
    actor: str = "cli",
    cert_sha256: str = "",
    cert_subject: str = "",
) -> tuple[str, str]:
    """Issue an API key for a partner; return (key id, secret). The secret is not stored.

    ``cert_sha256`` / ``cert_subject`` bind the key to a client certificate (see ``hub.auth``).
    """
    partner = session.execute(select(m.Partner).where(m.Partner.slug == partner_slug)).scalar_one_or_none()
    if partner is None or partner.slug == "hub":  # the hub itself never authenticates; peer hubs do
        raise NotFound(f"unknown partner '{partner_slug}'")
    if expires_days is not None and expires_days <= 0:
        raise BadRequest("--expires-days must be a positive number of days")
    try:
        networks = auth.parse_cidrs(cidrs)
        fingerprint = auth.normalise_fingerprint(cert_sha256) if cert_sha256 else ""
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if len(cert_subject) > 500:
        raise BadRequest("--cert-subject is longer than 500 characters")
    secret, key_id, now = auth.new_secret(), auth.new_key_id(), clock.now_us()
    session.add(
        m.ApiKey(
            key_id=key_id,
            partner_id=partner.id,
            secret_hash=auth.hash_secret(pepper, secret),
            label=label,
            read_only=read_only,
            cidrs=",".join(str(n) for n in networks),
            created_us=now,
            expires_us=now + expires_days * 86_400_000_000 if expires_days else None,
            cert_sha256=fingerprint,
            cert_subject=cert_subject.strip(),
        )
    )
    auditlog.audit(
        session,
        actor,
        "key.create",
        partner_slug,
        {
            "key_id": key_id,
            "read_only": read_only,
            "expires_days": expires_days,
            "cidrs": cidrs,
            "cert_sha256": fingerprint,
            "cert_subject": cert_subject.strip(),
        },
    )
    return key_id, secret


def rotate_keys(
    session: Session, pepper: str, partner_slug: str, *, overlap_us: int, key_id: str = "", actor: str = "cli"
) -> tuple[str, str, list[str]]:
    """Issue a new key like the partner's current one and expire the old ones after ``overlap_us``.

    The new key keeps the old one's label, mode, networks and certificate binding, so a SIEM
    switches by changing the secret alone; the old keys keep working until the overlap ends (or
    their own earlier expiry). Return (new key id, its secret, the key ids that will expire).
    """
    now = clock.now_us()
    stmt = (
        select(m.ApiKey)
        .join(m.Partner)
        .where(m.Partner.slug == partner_slug, m.ApiKey.revoked_us.is_(None))
        .where((m.ApiKey.expires_us.is_(None)) | (m.ApiKey.expires_us > now))
        .order_by(m.ApiKey.created_us.desc())
    )
    current = [k for k in session.scalars(stmt) if not key_id or k.key_id == key_id]
    if not current:
        raise NotFound(
            f"no active key {key_id!r} of partner '{partner_slug}'"
            if key_id
            else f"partner '{partner_slug}' has no active key to rotate"
        )
    if overlap_us < 0:
        raise BadRequest("--overlap must not be negative")
    model = current[0]
    lifetime_days = (model.expires_us - model.created_us) // 86_400_000_000 if model.expires_us else None
    new_id, secret = create_key(
        session,
        pepper,
        partner_slug,
        read_only=model.read_only,
        expires_days=max(1, lifetime_days) if lifetime_days is not None else None,
        cidrs=model.cidrs,
        label=model.label,
        actor=actor,
        cert_sha256=model.cert_sha256,
        cert_subject=model.cert_subject,
    )
    ends = now + overlap_us
    for key in current:
        key.expires_us = min(key.expires_us, ends) if key.expires_us else ends
    auditlog.audit(
        session,
        actor,
        "key.rotate",
        partner_slug,
        {"new": new_id, "expiring": [k.key_id for k in current], "overlap_us": overlap_us},
    )
    return new_id, secret, [k.key_id for k in current]


def revoke_key(session: Session, key_id: str, *, actor: str = "cli") -> None:
    key = session.execute(select(m.ApiKey).where(m.ApiKey.key_id == key_id)).scalar_one_or_none()
    if key is None:
        raise NotFound(f"unknown key '{key_id}'")
    if key.revoked_us is None:
        key.revoked_us = clock.now_us()
        auditlog.audit(session, actor, "key.revoke", key_id)


def reset_admin_password(session: Session, username: str, password: str, actor: str = "cli") -> None:
    """Give an existing panel account a new password (argon2), recorded in the audit trail."""
    from argon2 import PasswordHasher

    if len(password) < 12:
        raise BadRequest("the password must be at least 12 characters")
    account = session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none()
    if account is None:
        raise NotFound(f"no administrator account named '{username}'")
    account.password_hash = PasswordHasher().hash(password)
    auditlog.audit(session, actor, "admin.password_reset", username)


def create_admin(session: Session, username: str, password: str, role: str = "admin") -> None:
    """Create a panel account; passwords are typed by people, so they get argon2."""
    from argon2 import PasswordHasher

    if not username or len(username) > 64:
        raise BadRequest("the username must be 1-64 characters")
    if len(password) < 12:
        raise BadRequest("the password must be at least 12 characters")
    if session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none():
        raise BadRequest(f"an account named '{username}' already exists")
    session.add(
        m.AdminUser(
            username=username, password_hash=PasswordHasher().hash(password), role=role, created_us=clock.now_us()
        )
    )
    auditlog.audit(session, "cli", "admin.create", username, {"role": role})
