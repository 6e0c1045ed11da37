"""The panel's reads and changes over the hub's tables; every change is an audit event with before/after."""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from hub import ledger, policy, sharing
from hub import models as m
from hub.errors import BadRequest, NotFound
from hub.formats import IPV4_PREFIX_BOUNDS, IPV6_PREFIX_BOUNDS, BlocklistLimits
from hub.models import split_list
from hub.policy import TLP
from hub.sharing import write
from hub.store import auditlog, logins, snapshots

PAGE = 50
LOCKOUT_FAILURES = 5  # per account
SOURCE_FAILURES = 20  # per source address: offices share addresses, so higher than per account
LOCKOUT_WINDOW_US = 15 * 60 * 1_000_000
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the account does not exist, so both cases cost the same time."""
    return _HASHER.hash("no such account: constant-time dummy")


def tlp_name(level: int | TLP | None) -> str:
    return "" if level is None else TLP(level).name.replace("_", "+")


# --------------------------------------------------------------------- accounts


def login(session: Session, username: str, password: str, source: str) -> tuple[dict[str, Any] | None, str]:
    """Check a panel login; return (the session's user, "") or (None, why), counting failures for lockout."""
    keys = [f"admin-user:{username}"[:64], f"admin-ip:{source}"[:64]]
    for key, limit in zip(keys, (LOCKOUT_FAILURES, SOURCE_FAILURES), strict=True):
        count, wait = logins.login_failures(session, key, LOCKOUT_WINDOW_US)
        if count >= limit:
            auditlog.audit(session, username[:100] or "-", "admin.login_locked", username, source=source)
            return None, f"Too many failed logins: try again in {wait // 60 + 1} minutes."
    user = session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none()
    try:
        _HASHER.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        for key in keys:
            logins.record_login_failure(session, key, LOCKOUT_WINDOW_US)
        auditlog.audit(session, username[:100] or "-", "admin.login_failed", username, source=source)
        return None, "Wrong username or password."
    session.execute(delete(m.LoginFailure).where(m.LoginFailure.source == keys[0]))
    auditlog.audit(session, user.username, "admin.login", user.username, {"role": user.role}, source=source)
    return {"id": user.id, "name": user.username, "role": user.role}, ""


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


# --------------------------------------------------------------------- trust groups


def groups(session: Session, snap: snapshots.Snapshot) -> list[dict[str, Any]]:
    out = []
    for g in session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.slug)):
        rule = snap.world.groups.get(g.slug)
        explicit = sorted(rule.members) if rule else []
        effective = sorted(
            p.slug for p in snap.partners.values() if p.kind != "hub" and rule is not None and rule.admits(p)
        )
        out.append({"row": g, "members": explicit, "countries": split_list(g.countries), "effective": effective})
    return out


def get_group(session: Session, slug: str) -> m.TrustGroup:
    row = session.execute(select(m.TrustGroup).where(m.TrustGroup.slug == slug)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no trust group '{slug}'")
    return row


def group_values(session: Session, row: m.TrustGroup) -> dict[str, Any]:
    members = session.scalars(
        select(m.Partner.slug)
        .join(m.TrustGroupMember)
        .where(m.TrustGroupMember.group_id == row.id)
        .order_by(m.Partner.slug)
    ).all()
    return {"name": row.name, "members": list(members), "countries": sorted(split_list(row.countries))}


def save_group(session: Session, actor: str, slug: str | None, values: dict[str, Any]) -> m.TrustGroup:
    new_slug: str = values.get("slug") or slug or ""
    known = set(session.scalars(select(m.Partner.slug).where(m.Partner.kind != "hub")))
    unknown = sorted(set(values["members"]) - known)
    if unknown:
        raise BadRequest(f"unknown partner {', '.join(unknown)}")
    if slug is None:
        if session.execute(select(m.TrustGroup.id).where(m.TrustGroup.slug == new_slug)).first():
            raise BadRequest(f"a trust group with id '{new_slug}' already exists")
        row, before = None, {}
    else:
        row = get_group(session, slug)
        before = group_values(session, row)
    marking = row.marking_id if row is not None else sharing.group_marking_id(new_slug)
    with write.rules_change(session):
        saved = write.save_group(
            session, row, new_slug, values["name"], tuple(values["countries"]), tuple(values["members"]), marking
        )
        auditlog.audit(
            session,
            actor,
            "group.create" if slug is None else "group.update",
            new_slug,
            {"before": before, "after": group_values(session, saved)},
        )
    return saved


def proposed_world(snap: snapshots.Snapshot, slug: str, members: list[str], countries: list[str]) -> policy.World:
    groups_now = dict(snap.world.groups)
    groups_now[slug] = policy.TrustGroup(slug, frozenset(members), frozenset(c.upper() for c in countries))
    return policy.World(groups_now)


# --------------------------------------------------------------------- collections


def roots(session: Session) -> list[m.ApiRoot]:
    return list(session.scalars(select(m.ApiRoot).order_by(m.ApiRoot.slug)))


def collections(session: Session) -> list[dict[str, Any]]:
    counts = dict(
        session.execute(
            select(m.ObjectVersion.collection_id, func.count(func.distinct(m.ObjectVersion.stix_id))).group_by(
                m.ObjectVersion.collection_id
            )
        ).all()
    )
    root_slug = {r.id: r.slug for r in roots(session)}
    rows = session.scalars(select(m.Collection).order_by(m.Collection.api_root_id, m.Collection.alias))
    return [
        {
            "row": c,
            "root": root_slug.get(c.api_root_id, "?"),
            "objects": counts.get(c.id, 0),
            "readers": split_list(c.readers),
            "writers": split_list(c.writers),
            "types": split_list(c.types),
        }
        for c in rows
    ]


def get_collection(session: Session, uuid: str) -> m.Collection:
    row = session.execute(select(m.Collection).where(m.Collection.uuid == uuid)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no collection '{uuid}'")
    return row


def collection_values(row: m.Collection) -> dict[str, Any]:
    return {
        "title": row.title,
        "description": row.description,
        "max_tlp": tlp_name(row.max_tlp),
        "default_tlp": tlp_name(row.default_tlp),
        "types": split_list(row.types),
        "readers": split_list(row.readers),
        "writers": split_list(row.writers),
        "retention_days": row.retention_days,
        "blocklist_ipv4_prefix": row.blocklist_ipv4_prefix,
        "blocklist_ipv6_prefix": row.blocklist_ipv6_prefix,
        "blocklist_allow_warninglisted": row.blocklist_allow_warninglisted,
    }


def check_grants(session: Session, entries: list[str], what: str) -> None:
    """Refuse grant entries that name no existing partner or group."""
    known_p = set(session.scalars(select(m.Partner.slug).where(m.Partner.kind != "hub")))
    known_g = set(session.scalars(select(m.TrustGroup.slug)))
    for entry in entries:
        if entry == policy.EVERYONE:
            continue
        kind, _, name = entry.partition(":") if ":" in entry else ("partner", "", entry)
        if kind == "group" and name not in known_g:
            raise BadRequest(f"{what}: unknown trust group '{name}'")
        if kind == "partner" and name not in known_p:
            raise BadRequest(f"{what}: unknown partner '{name}'")
        if kind not in ("group", "partner"):
            raise BadRequest(f"{what}: '{entry}' is not '*', 'group:NAME' or 'partner:NAME'")


def collection_rules(uuid: str, values: dict[str, Any]) -> policy.Collection:
    return policy.Collection(
        id=uuid,
        max_tlp=TLP.parse(values["max_tlp"]),
        default_tlp=TLP.parse(values["default_tlp"]),
        types=frozenset(values["types"]),
        readers=policy.Grants.parse(values["readers"]),
        writers=policy.Grants.parse(values["writers"]),
    )


def save_collection(session: Session, actor: str, uuid: str | None, values: dict[str, Any]) -> m.Collection:
    check_grants(session, values["readers"], "readers")
    check_grants(session, values["writers"], "writers")
    for key, (low, high) in (
        ("blocklist_ipv4_prefix", IPV4_PREFIX_BOUNDS),
        ("blocklist_ipv6_prefix", IPV6_PREFIX_BOUNDS),
    ):
        if key in values and not low <= values[key] <= high:
            raise BadRequest(f"{key}: use a prefix length from {low} to {high}")
    columns = {
        "title": values["title"],
        "description": values["description"],
        "max_tlp": int(TLP.parse(values["max_tlp"])),
        "default_tlp": int(TLP.parse(values["default_tlp"])),
        "types": ",".join(values["types"]),
        "readers": ",".join(values["readers"]),
        "writers": ",".join(values["writers"]),
        "retention_days": values.get("retention_days"),
        "blocklist_ipv4_prefix": values.get("blocklist_ipv4_prefix", BlocklistLimits.ipv4_prefix),
        "blocklist_ipv6_prefix": values.get("blocklist_ipv6_prefix", BlocklistLimits.ipv6_prefix),
        "blocklist_allow_warninglisted": bool(
            values.get("blocklist_allow_warninglisted", BlocklistLimits.allow_warninglisted)
        ),
    }
    with write.rules_change(session):
        if uuid is None:
            root = session.execute(select(m.ApiRoot).where(m.ApiRoot.slug == values["root"])).scalar_one_or_none()
            if root is None:
                raise BadRequest(f"unknown API root '{values['root']}'")
            if session.execute(
                select(m.Collection.id).where(
                    m.Collection.api_root_id == root.id, m.Collection.alias == values["alias"]
                )
            ).first():
                raise BadRequest(f"API root {root.slug} already has a collection with alias '{values['alias']}'")
            new_uuid = sharing.collection_uuid(root.slug, values["alias"])
            if session.execute(select(m.Collection.id).where(m.Collection.uuid == new_uuid)).first():
                raise BadRequest(f"collection id {new_uuid} is already taken")
            row = write.add_collection(
                session, root.id, values["alias"], {**columns, "uuid": new_uuid, "is_reference": False}
            )
            before: dict[str, Any] = {}
        else:
            row = get_collection(session, uuid)
            if row.is_reference:
                raise BadRequest("the reference collection is maintained by the hub and cannot be edited")
            before = collection_values(row)
            write.set_columns(row, columns)
        session.flush()
        auditlog.audit(
            session,
            actor,
            "collection.create" if uuid is None else "collection.update",
            f"{row.alias} ({row.uuid})",
            {"before": before, "after": collection_values(row)},
        )
    return row


# --------------------------------------------------------------------- audit


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: str = ""
    until: str = ""


def _day_us(text: str, *, end: bool = False) -> int | None:
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"'{text}' is not a date (YYYY-MM-DD)") from None
    if end:
        day += timedelta(days=1)
    return int(day.timestamp() * 1_000_000)


def _audit_stmt(f: AuditFilter):
    stmt = select(m.AuditEvent)
    if f.actor:
        stmt = stmt.where(m.AuditEvent.actor == f.actor)
    if f.action:
        stmt = stmt.where(or_(m.AuditEvent.action == f.action, m.AuditEvent.action.like(f.action + ".%")))
    if f.target:
        stmt = stmt.where(m.AuditEvent.target.contains(f.target, autoescape=True))
    since, until = _day_us(f.since), _day_us(f.until, end=True)
    if since is not None:
        stmt = stmt.where(m.AuditEvent.at_us >= since)
    if until is not None:
        stmt = stmt.where(m.AuditEvent.at_us < until)
    return stmt.order_by(m.AuditEvent.at_us.desc(), m.AuditEvent.id.desc())


def audit_page(session: Session, f: AuditFilter, page: int) -> tuple[list[m.AuditEvent], bool]:
    rows = list(session.scalars(_audit_stmt(f).offset((page - 1) * PAGE).limit(PAGE + 1)))
    return rows[:PAGE], len(rows) > PAGE


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(m.AuditEvent.action).distinct().order_by(m.AuditEvent.action)))


def audit_csv(session: Session, f: AuditFilter) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "actor", "action", "target", "source", "detail"])
    for e in session.scalars(_audit_stmt(f).limit(100_000)):
        cells = [when(e.at_us), e.actor, e.action, e.target, e.source, e.detail]
        # A cell starting with = + - @ (or tab, CR) is a formula to spreadsheets: prefix it so it stays text.
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells])
    return out.getvalue()


def when(us: int | None) -> str:
    if not us:
        return ""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------- objects


@dataclass(frozen=True)
class ObjectSearch:
    id: str = ""
    type: str = ""
    partner: str = ""
    tlp: str = ""
    text: str = ""
    collection: str = ""


def search_objects(
    session: Session, snap: snapshots.Snapshot, q: ObjectSearch, page: int
) -> tuple[list[m.ObjectVersion], bool]:
    """Newest first, every version matching; an administrator's view of all objects."""
    V = m.ObjectVersion
    stmt = select(V)
    if q.id:
        stmt = stmt.where(V.stix_id.startswith(q.id, autoescape=True))
    if q.type:
        stmt = stmt.where(V.type == q.type)
    if q.partner:
        pk = snap.by_slug.get(q.partner)
        if pk is None:
            raise BadRequest(f"unknown partner '{q.partner}'")
        stmt = stmt.where(V.originator_id == pk)
    if q.tlp:
        stmt = stmt.where(V.tlp == int(TLP.parse(q.tlp)))
    if q.collection:
        info = snap.collections.get(q.collection)
        if info is None:
            raise BadRequest(f"unknown collection '{q.collection}'")
        stmt = stmt.where(V.collection_id == info.pk)
    if q.text:
        stmt = stmt.where(V.raw.contains(q.text, autoescape=True))
    stmt = stmt.order_by(V.date_added.desc()).offset((page - 1) * PAGE).limit(PAGE + 1)
    rows = list(session.scalars(stmt))
    return rows[:PAGE], len(rows) > PAGE


def object_versions(session: Session, stix_id: str) -> list[m.ObjectVersion]:
    return list(
        session.scalars(
            select(m.ObjectVersion)
            .where(m.ObjectVersion.stix_id == stix_id)
            .order_by(m.ObjectVersion.collection_id, m.ObjectVersion.version_us.desc())
        )
    )


def recipients(session: Session, snap: snapshots.Snapshot, stix_id: str) -> list[str]:
    """The partners the delivery ledger says received any version of an object."""
    return sorted({r.partner for r in ledger.who_received(session, snap, stix_id)})


def object_types(session: Session) -> list[str]:
    return list(session.scalars(select(m.ObjectVersion.type).distinct().order_by(m.ObjectVersion.type)))
