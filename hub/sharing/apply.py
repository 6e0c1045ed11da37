"""Making the database match a sharing configuration: ``plan`` lists the changes, ``apply`` makes them.

* partners are never deleted (they have keys, objects and audit history): a partner missing from the
  file is suspended;
* trust groups missing from the file are removed; collections (and API roots) missing from the file
  are removed only when they hold no objects;
* every API root gets a read-only ``reference`` collection, readable by all;
* the hub itself is a partner (slug ``hub``, kind ``hub``): the originator of the reference data. It
  never gets API keys and is not exported.

Every change is written through :mod:`hub.sharing.write`, the panel's write path too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from hub import models as m
from hub import policy, reference
from hub.errors import ConfigError
from hub.formats import BlocklistLimits
from hub.models import split_list
from hub.policy import TLP
from hub.progress import Report, silent
from hub.sharing import write
from hub.sharing.spec import (
    HUB_SLUG,
    ApiRootSpec,
    Change,
    CollectionSpec,
    GroupSpec,
    PartnerSpec,
    SharingSpec,
    group_marking_id,
    hub_identity,
    reference_collection,
    tlp_name,
)
from hub.store import auditlog


@dataclass(frozen=True)
class _Step:
    """One change and the function that makes it."""

    change: Change
    run: Callable[[], object]


def plan(session: Session, spec: SharingSpec) -> list[Change]:
    """List what ``apply`` would change; empty when the database already matches ``spec``."""
    return [step.change for step in _steps(session, spec)]


def apply(session: Session, spec: SharingSpec, *, actor: str = "cli", progress: Report = silent) -> list[Change]:
    """Make the database match ``spec`` in the caller's transaction; return what changed.

    Every problem is found before the first change is made, so a ConfigError leaves
    the database untouched. ``progress`` hears of each change made (phase "changes"), then of
    what the rule change does to the collections (see ``rule_change.reannounce``).
    """
    steps = _steps(session, spec)
    if not steps:
        reference.publish_reference(session)  # a hub restored from an older release may lack some
        return []
    with write.rules_change(session, progress):
        for done, step in enumerate(steps, 1):
            step.run()
            # Flushed one by one: later steps look up rows (new partners, roots) by slug.
            session.flush()
            auditlog.audit(session, actor, "sharing.apply", step.change.what, {"change": str(step.change)})
            progress("changes", done, len(steps), unit="changes")
    return [step.change for step in steps]


def _steps(session: Session, spec: SharingSpec) -> list[_Step]:
    state = session.get(m.HubState, 1)
    if state is None:
        raise ConfigError("database not initialised: run `cti-hub db upgrade`")
    identity = state.identity_id or hub_identity()
    current = {"name": state.name, "contact": state.contact, "identity_id": state.identity_id}
    wanted = {"name": spec.hub_name, "contact": spec.hub_contact, "identity_id": identity}
    steps = _update("hub", state, current, wanted)
    steps += _partner_steps(session, spec, identity)
    steps += _group_steps(session, spec)
    steps += _api_steps(session, spec)
    return steps


def _located(spec: SharingSpec, line: int, message: str) -> str:
    return f"{spec.source}:{line}: {message}" if line else f"{spec.source}: {message}"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, TLP):
        return tlp_name(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _describe(current: dict[str, Any], changed: dict[str, Any]) -> str:
    """Describe changed fields: ``max_tlp GREEN -> AMBER; readers +group:asean, -partner:cisa``."""
    parts = []
    for name, new in changed.items():
        old = current.get(name)
        if isinstance(new, tuple):
            old = old or ()
            delta = [f"+{x}" for x in new if x not in old] + [f"-{x}" for x in old if x not in new]
            parts.append(f"{name} {', '.join(delta)}")
        else:
            parts.append(f"{name} {_show(old)} -> {_show(new)}")
    return "; ".join(parts)


def _update(
    what: str,
    row: Any,
    current: dict[str, Any],
    wanted: dict[str, Any],
    *,
    note: str = "",
    save: Callable[[dict[str, Any]], None] | None = None,
) -> list[_Step]:
    """Return the step that brings ``row`` from ``current`` to ``wanted``, if they differ."""
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return []

    def run() -> None:
        if save is not None:
            save(changed)
            return
        write.set_columns(row, changed)

    return [_Step(Change("update", what, _describe(current, changed) + note), run)]


# --------------------------------------------------------------------- partners


def _partner_values(row: m.Partner) -> dict[str, Any]:
    return {
        "name": row.name,
        "country": row.country,
        "sector": row.sector,
        "kind": row.kind,
        "clearance": TLP(row.clearance),
        "active": row.active,
        "identity_id": row.identity_id,
        "acs_organization": row.acs_organization,
        "acs_shareability": row.acs_shareability,
        "acs_entity": row.acs_entity,
    }


def _partner_wanted(p: PartnerSpec, row: m.Partner | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": p.name,
        "country": p.country,
        "sector": p.sector,
        "kind": p.kind,
        "clearance": p.clearance,
        "active": p.active,
        "acs_organization": p.acs_organization,
        "acs_shareability": ",".join(p.acs_shareability),
        "acs_entity": ",".join(p.acs_entity),
    }
    # A derived identity never replaces one already stored: objects' created_by_ref point at it.
    if p.identity_explicit or row is None:
        values["identity_id"] = p.identity
    return values


def _partner_summary(p: PartnerSpec) -> str:
    state = "" if p.active else ", suspended"
    return f"{p.name}, {p.country or 'no country'}, clearance {tlp_name(p.clearance)}{state}"


def _partner_steps(session: Session, spec: SharingSpec, hub_id: str) -> list[_Step]:
    rows = {p.slug: p for p in session.scalars(select(m.Partner).order_by(m.Partner.id))}
    # The hub is a partner too: the originator of the reference data.
    hub = PartnerSpec(HUB_SLUG, spec.hub_name, "", "", "hub", TLP.RED, True, hub_id, True)
    wanted = [hub, *spec.partners]
    _check_identities(spec, rows, wanted)
    steps: list[_Step] = []
    for p in wanted:
        row = rows.get(p.slug)
        values = _partner_wanted(p, row)
        if row is None:
            add = _Step(
                Change("add", f"partner {p.slug}", _partner_summary(p)),
                partial(write.add_partner, session, p.slug, values),
            )
            steps.append(add)
        else:
            steps += _update(f"partner {p.slug}", row, _partner_values(row), values)
    listed = {p.slug for p in wanted}
    for slug, row in rows.items():
        # Never deleted (keys, objects, audit history): suspended instead.
        if slug not in listed and row.active:
            steps += _update(
                f"partner {slug}", row, {"active": True}, {"active": False}, note=" (not in the file: suspended)"
            )
    return steps


def _check_identities(spec: SharingSpec, rows: dict[str, m.Partner], wanted: list[PartnerSpec]) -> None:
    """Refuse a file that would give two partners the same STIX identity."""
    final = {slug: row.identity_id for slug, row in rows.items()}
    for p in wanted:
        if p.identity_explicit or p.slug not in rows:
            final[p.slug] = p.identity
    owners: dict[str, list[str]] = {}
    for slug, identity in final.items():
        owners.setdefault(identity, []).append(slug)
    lines = {p.slug: p.line for p in wanted}
    errors = []
    for identity, slugs in owners.items():
        if len(slugs) > 1:
            slug = max(slugs, key=lambda s: lines.get(s, 0))
            others = ", ".join(s for s in slugs if s != slug)
            message = f"identity {identity} of partner {slug} already belongs to partner {others}"
            errors.append(_located(spec, lines.get(slug, 0), message))
    if errors:
        raise ConfigError("\n".join(errors))


# --------------------------------------------------------------------- trust groups


def _group_steps(session: Session, spec: SharingSpec) -> list[_Step]:
    rows = {g.slug: g for g in session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.id))}
    members: dict[int, list[str]] = {}
    stmt = select(m.TrustGroupMember.group_id, m.Partner.slug).join(
        m.Partner, m.Partner.id == m.TrustGroupMember.partner_id
    )
    for group_id, slug in session.execute(stmt):
        members.setdefault(group_id, []).append(slug)
    steps: list[_Step] = []
    for g in spec.groups:
        wanted = {
            "name": g.name,
            "countries": g.countries,
            "marking_id": group_marking_id(g.slug),
            "members": g.members,
        }
        row = rows.get(g.slug)
        if row is None:
            summary = (
                f"{g.name}; members {', '.join(g.members) or 'none'}; countries {', '.join(g.countries) or 'none'}"
            )
            steps.append(_Step(Change("add", f"trust group {g.slug}", summary), partial(_save_group, session, None, g)))
            continue
        current = {
            "name": row.name,
            "countries": tuple(sorted(split_list(row.countries))),
            "marking_id": row.marking_id,
            "members": tuple(sorted(members.get(row.id, []))),
        }
        steps += _update(
            f"trust group {g.slug}", row, current, wanted, save=partial(_save_group_changed, session, row, g)
        )
    listed = {g.slug for g in spec.groups}
    for slug, row in rows.items():
        if slug not in listed:
            steps.append(_Step(Change("remove", f"trust group {slug}"), partial(write.remove_group, session, row)))
    return steps


def _save_group(session: Session, row: m.TrustGroup | None, g: GroupSpec) -> None:
    write.save_group(session, row, g.slug, g.name, g.countries, g.members, group_marking_id(g.slug))


def _save_group_changed(session: Session, row: m.TrustGroup, g: GroupSpec, _changed: dict[str, Any]) -> None:
    _save_group(session, row, g)


# --------------------------------------------------------------------- API roots and collections

_Key = tuple[str, str]


def _api_steps(session: Session, spec: SharingSpec) -> list[_Step]:
    """Collection removals, then API roots, then collection additions and updates."""
    roots = {r.slug: r for r in session.scalars(select(m.ApiRoot).order_by(m.ApiRoot.id))}
    root_slug = {r.id: r.slug for r in roots.values()}
    collections = session.scalars(select(m.Collection).order_by(m.Collection.id))
    rows = {(root_slug[c.api_root_id], c.alias): c for c in collections}
    wanted = {
        (root.slug, c.alias): c for root in spec.roots for c in (*root.collections, reference_collection(root.slug))
    }
    gone = [key for key in rows if key not in wanted]
    _check_removable(session, spec, gone, rows)
    _check_collection_ids(spec, rows, wanted)
    steps = []
    for key in gone:
        row = rows[key]
        note = "reference data" if row.is_reference else ""
        change = Change("remove", f"collection {key[0]}/{key[1]}", note)
        steps.append(_Step(change, partial(write.remove_collection, session, row)))
    listed = {root.slug for root in spec.roots}
    steps += [
        _Step(Change("remove", f"API root {slug}"), partial(write.remove_root, session, row))
        for slug, row in roots.items()
        if slug not in listed
    ]
    for root in spec.roots:
        steps += _root_step(session, root, roots.get(root.slug))
    for key, c in wanted.items():
        steps += _collection_step(session, key, c, rows.get(key))
    return steps


def _root_step(session: Session, root: ApiRootSpec, row: m.ApiRoot | None) -> list[_Step]:
    wanted = {"title": root.title, "description": root.description, "max_content_length": root.max_content_length}
    if row is None:
        return [
            _Step(
                Change("add", f"API root {root.slug}", root.title), partial(write.add_root, session, root.slug, wanted)
            )
        ]
    current = {"title": row.title, "description": row.description, "max_content_length": row.max_content_length}
    return _update(f"API root {root.slug}", row, current, wanted)


def collection_values(row: m.Collection) -> dict[str, Any]:
    def grants(text: str) -> tuple[str, ...]:
        return tuple(policy.Grants.parse(split_list(text)).entries())

    return {
        "uuid": row.uuid,
        "title": row.title,
        "description": row.description,
        "max_tlp": TLP(row.max_tlp),
        "default_tlp": TLP(row.default_tlp),
        "types": tuple(sorted(split_list(row.types))),
        "readers": grants(row.readers),
        "writers": grants(row.writers),
        "is_reference": row.is_reference,
        "retention_days": row.retention_days,
        "blocklist_ipv4_prefix": row.blocklist_ipv4_prefix,
        "blocklist_ipv6_prefix": row.blocklist_ipv6_prefix,
        "blocklist_allow_warninglisted": row.blocklist_allow_warninglisted,
        "is_feedback": row.is_feedback,
        "false_positive_threshold": row.false_positive_threshold,
        "false_positive_withdraw": row.false_positive_withdraw,
    }


def _collection_wanted(c: CollectionSpec, row: m.Collection | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "title": c.title,
        "description": c.description,
        "max_tlp": c.max_tlp,
        "default_tlp": c.default_tlp,
        "types": c.types,
        "readers": c.readers,
        "writers": c.writers,
        "is_reference": c.is_reference,
        "retention_days": c.retention_days,
        "blocklist_ipv4_prefix": c.blocklist_ipv4_prefix,
        "blocklist_ipv6_prefix": c.blocklist_ipv6_prefix,
        "blocklist_allow_warninglisted": c.blocklist_allow_warninglisted,
        "is_feedback": c.feedback,
        "false_positive_threshold": c.false_positive_threshold,
        "false_positive_withdraw": c.false_positive_withdraw,
    }
    # A derived id never replaces one already stored: TAXII clients have saved it.
    if c.uuid_explicit or row is None:
        values["uuid"] = c.uuid
    return values


def _collection_summary(c: CollectionSpec) -> str:
    return (
        f"{c.title}; max_tlp {tlp_name(c.max_tlp)}, default_tlp {tlp_name(c.default_tlp)}; "
        f"types {', '.join(c.types) or 'all'}; readers {', '.join(c.readers) or 'none'}; "
        f"writers {', '.join(c.writers) or 'none'}"
        + (f"; retention {c.retention_days} days" if c.retention_days is not None else "")
        + (
            f"; ip.txt networks up to /{c.blocklist_ipv4_prefix} and /{c.blocklist_ipv6_prefix}"
            if BlocklistLimits(c.blocklist_ipv4_prefix, c.blocklist_ipv6_prefix) != BlocklistLimits()
            else ""
        )
        + ("; blocklists list warninglisted values" if c.blocklist_allow_warninglisted else "")
        + ("; the feedback collection" if c.feedback else "")
        + (
            f"; {c.false_positive_threshold} partners' false-positive reports flag an indicator"
            + (" and withdraw it from the blocklists" if c.false_positive_withdraw else "")
            if c.false_positive_threshold
            else ""
        )
    )


def _collection_step(session: Session, key: _Key, c: CollectionSpec, row: m.Collection | None) -> list[_Step]:
    what = f"collection {key[0]}/{key[1]}"
    values = _collection_wanted(c, row)
    if row is not None:
        return _update(what, row, collection_values(row), values)

    def add() -> None:
        root_id = session.scalars(select(m.ApiRoot.id).where(m.ApiRoot.slug == key[0])).one()
        write.add_collection(session, root_id, c.alias, values)

    return [_Step(Change("add", what, _collection_summary(c)), add)]


def _check_removable(session: Session, spec: SharingSpec, gone: list[_Key], rows: dict[_Key, m.Collection]) -> None:
    """Refuse to drop a collection that holds objects (reference data is the hub's own, so it may go)."""
    full = []
    for key in gone:
        row = rows[key]
        has = session.scalar(select(exists().where(m.ObjectVersion.collection_id == row.id)))
        if has and not row.is_reference:
            full.append(f"{key[0]}/{key[1]}")
    if full:
        raise ConfigError(
            _located(
                spec,
                0,
                f"collection{'s' if len(full) > 1 else ''} {', '.join(full)} "
                "not in the file but holding objects: add back to the file, or "
                "delete the objects first",
            )
        )


def _check_collection_ids(
    spec: SharingSpec, rows: dict[_Key, m.Collection], wanted: dict[_Key, CollectionSpec]
) -> None:
    """Refuse a file that would give two collections the same TAXII id."""
    owner: dict[str, _Key] = {}
    for key, c in wanted.items():
        row = rows.get(key)
        final = c.uuid if c.uuid_explicit or row is None else row.uuid
        if final in owner:
            other = owner[final]
            message = f"collection id {final} of {key[0]}/{key[1]} already belongs to collection {other[0]}/{other[1]}"
            raise ConfigError(_located(spec, c.line, message))
        owner[final] = key
