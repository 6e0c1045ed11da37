"""The panel's accounts, partners and API keys: reads and changes, each change an audit event with before/after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import models as m
from hub import sharing
from hub.admin import signin
from hub.admin.display import tlp_name
from hub.errors import BadRequest, NotFound
from hub.models import split_list
from hub.policy import TLP
from hub.sharing import write
from hub.store import auditlog

# The password step and the lockout live in hub.admin.signin; named here too for the callers that use them here.
LOCKOUT_FAILURES, SOURCE_FAILURES, login = signin.LOCKOUT_FAILURES, signin.SOURCE_FAILURES, signin.login


def account(session: Session, user_id: int, logged_in_us: int = 0) -> dict[str, Any] | None:
    """Return the logged-in account as it is now (deleted or re-roled accounts take effect at once).

    None too when the account logged out at or after ``logged_in_us``: the session cookie is signed,
    not stored, so a copy taken before a logout must die with it.
    """
    user = session.get(m.AdminUser, user_id)
    if user is None:
        return None
    logged_out = (
        select(m.AuditEvent.id)
        .where(
            m.AuditEvent.action == "admin.logout",
            m.AuditEvent.actor == user.username,
            m.AuditEvent.at_us >= logged_in_us,
        )
        .limit(1)
    )
    if session.execute(logged_out).first() is not None:
        return None
    return {"id": user.id, "name": user.username, "role": user.role}


# --------------------------------------------------------------------- partners


def partner_values(row: m.Partner) -> dict[str, Any]:
    return {
        "name": row.name,
        "country": row.country,
        "sector": row.sector,
        "kind": row.kind,
        "clearance": tlp_name(row.clearance),
        "active": row.active,
        "acs_organization": row.acs_organization,
        "acs_shareability": row.acs_shareability,
        "acs_entity": row.acs_entity,
    }


def partners(session: Session) -> list[dict[str, Any]]:
    """Every partner but the hub itself, with key counts and the last use of any key."""
    stats = {
        pid: (n, last)
        for pid, n, last in session.execute(
            select(m.ApiKey.partner_id, func.count(), func.max(m.ApiKey.last_used_us))
            .where(m.ApiKey.revoked_us.is_(None))
            .group_by(m.ApiKey.partner_id)
        )
    }
    out = []
    for p in session.scalars(select(m.Partner).where(m.Partner.kind != "hub").order_by(m.Partner.slug)):
        keys, last = stats.get(p.id, (0, None))
        out.append({"row": p, "keys": keys, "last_used_us": last})
    return out


def get_partner(session: Session, slug: str) -> m.Partner:
    row = session.execute(select(m.Partner).where(m.Partner.slug == slug)).scalar_one_or_none()
    if row is None or row.kind == "hub":
        raise NotFound(f"no partner '{slug}'")
    return row


def save_partner(session: Session, actor: str, slug: str | None, values: dict[str, Any]) -> m.Partner:
    """Create (``slug`` None: ``values['slug']``) or update a partner."""
    columns = {**values, "clearance": TLP.parse(values["clearance"]), "country": values["country"].upper()}
    new_slug = columns.pop("slug", None)
    with write.rules_change(session):
        if slug is None:
            if session.execute(select(m.Partner.id).where(m.Partner.slug == new_slug)).first():
                raise BadRequest(f"a partner with id '{new_slug}' already exists")
            identity = sharing.partner_identity(new_slug)
            if session.execute(select(m.Partner.id).where(m.Partner.identity_id == identity)).first():
                raise BadRequest(f"the STIX identity {identity} already belongs to another partner")
            row = write.add_partner(session, new_slug, {**columns, "identity_id": identity})
            before: dict[str, Any] = {}
        else:
            row = get_partner(session, slug)
            before = partner_values(row)
            write.set_columns(row, columns)
        session.flush()
        auditlog.audit(
            session,
            actor,
            "partner.create" if slug is None else "partner.update",
            row.slug,
            {"before": before, "after": partner_values(row)},
        )
    return row


def set_partner_active(session: Session, actor: str, slug: str, active: bool) -> None:
    row = get_partner(session, slug)
    if row.active == active:
        return
    with write.rules_change(session):
        write.set_columns(row, {"active": active})
        auditlog.audit(
            session,
            actor,
            "partner.reactivate" if active else "partner.suspend",
            slug,
            {"before": {"active": not active}, "after": {"active": active}},
        )


def dependents_of_partner(session: Session, row: m.Partner) -> list[str]:
    """Say what depends on a partner: groups, collection grants, objects, live keys."""
    out = []
    groups = session.scalars(
        select(m.TrustGroup.slug).join(m.TrustGroupMember).where(m.TrustGroupMember.partner_id == row.id)
    ).all()
    if groups:
        out.append("member of trust groups " + ", ".join(sorted(groups)))
    grants = [
        f"{c.alias}"
        for c in session.scalars(select(m.Collection))
        if f"partner:{row.slug}" in split_list(c.readers) + split_list(c.writers)
        or row.slug in split_list(c.readers) + split_list(c.writers)
    ]
    if grants:
        out.append("named in collections " + ", ".join(sorted(grants)))
    objects = (
        session.scalar(
            select(func.count(func.distinct(m.ObjectVersion.stix_id))).where(m.ObjectVersion.originator_id == row.id)
        )
        or 0
    )
    if objects:
        out.append(f"originator of {objects} objects (they stay shared; suspension stops its own access)")
    keys = session.scalar(select(func.count()).where(m.ApiKey.partner_id == row.id, m.ApiKey.revoked_us.is_(None)))
    if keys:
        out.append(f"{keys} live API keys (refused while suspended)")
    return out


# --------------------------------------------------------------------- keys


def keys_of(session: Session, partner_pk: int) -> list[m.ApiKey]:
    return list(
        session.scalars(select(m.ApiKey).where(m.ApiKey.partner_id == partner_pk).order_by(m.ApiKey.created_us.desc()))
    )


def key_partner(session: Session, key_id: str) -> str:
    row = session.execute(
        select(m.Partner.slug).join(m.ApiKey, m.ApiKey.partner_id == m.Partner.id).where(m.ApiKey.key_id == key_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no key '{key_id}'")
    return row
