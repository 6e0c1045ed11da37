"""The panel's trust groups and collections: reads and changes, each change an audit event with before/after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import models as m
from hub import policy, sharing
from hub.admin.display import tlp_name
from hub.errors import BadRequest, NotFound
from hub.formats import IPV4_PREFIX_BOUNDS, IPV6_PREFIX_BOUNDS, BlocklistLimits
from hub.models import split_list
from hub.policy import TLP
from hub.sharing import write
from hub.sharing.parse_collections import MAX_FALSE_POSITIVE_THRESHOLD
from hub.store import auditlog, snapshots

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
        "is_feedback": row.is_feedback,
        "false_positive_threshold": row.false_positive_threshold,
        "false_positive_withdraw": row.false_positive_withdraw,
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
        feedback=bool(values.get("is_feedback")),
    )


def check_feedback(session: Session, uuid: str | None, values: dict[str, Any]) -> None:
    """Refuse a second feedback collection in an API root: an API root has at most one."""
    if not values.get("is_feedback"):
        return
    root_id: int | None
    if uuid is not None:
        root_id = get_collection(session, uuid).api_root_id
    else:
        root_id = session.execute(select(m.ApiRoot.id).where(m.ApiRoot.slug == values["root"])).scalar()
    other = session.execute(
        select(m.Collection.alias).where(
            m.Collection.api_root_id == root_id, m.Collection.is_feedback.is_(True), m.Collection.uuid != (uuid or "")
        )
    ).scalar()
    if other is not None:
        raise BadRequest(
            f"collection {other} is already this API root's feedback collection: an API root has at most one"
        )


def save_collection(session: Session, actor: str, uuid: str | None, values: dict[str, Any]) -> m.Collection:
    check_grants(session, values["readers"], "readers")
    check_grants(session, values["writers"], "writers")
    check_feedback(session, uuid, values)
    for key, (low, high) in (
        ("blocklist_ipv4_prefix", IPV4_PREFIX_BOUNDS),
        ("blocklist_ipv6_prefix", IPV6_PREFIX_BOUNDS),
    ):
        if key in values and not low <= values[key] <= high:
            raise BadRequest(f"{key}: use a prefix length from {low} to {high}")
    threshold = values.get("false_positive_threshold", 0)
    if not 0 <= threshold <= MAX_FALSE_POSITIVE_THRESHOLD:
        raise BadRequest(
            f"false_positive_threshold: use a whole number of partners from 0 to {MAX_FALSE_POSITIVE_THRESHOLD}"
        )
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
        "is_feedback": bool(values.get("is_feedback", False)),
        "false_positive_threshold": threshold,
        "false_positive_withdraw": bool(values.get("false_positive_withdraw", False)),
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
