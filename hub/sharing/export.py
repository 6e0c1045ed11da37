"""Writing the database's sharing configuration back as sharing.yaml."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import models as m
from hub.errors import ConfigError
from hub.formats import BlocklistLimits
from hub.models import split_list
from hub.policy import TLP
from hub.sharing.apply import collection_values
from hub.sharing.spec import HUB_SLUG, collection_uuid, partner_identity, tlp_name

_EXPORT_HEADER = """\
# cti-hub sharing configuration, exported from the database.
# Format and every key: see config/sharing.yaml in the cti-hub sources.
# Apply with `cti-hub sharing apply FILE` (`--dry-run` to see the changes first).
"""

_SECTION_COMMENTS = {
    "hub:": "# The hub itself: its display name and operator contact.",
    "partners:": "# Partner organisations (the hub's own partner row is implicit and not listed).",
    "trust_groups:": "# Trust groups: explicit members plus every partner of the listed countries.",
    "api_roots:": ("# API roots and their collections (each root's read-only `reference` collection is implicit)."),
}


def export(session: Session) -> str:
    """Return the database's sharing configuration as YAML in the ``load`` format."""
    state = session.get(m.HubState, 1)
    if state is None:
        raise ConfigError("database not initialised: run `cti-hub db upgrade`")
    data = {
        "hub": {"name": state.name or "cti-hub", "contact": state.contact},
        "partners": [
            _export_partner(p) for p in session.scalars(select(m.Partner).order_by(m.Partner.id)) if p.slug != HUB_SLUG
        ],
        "trust_groups": _export_groups(session),
        "api_roots": _export_roots(session),
    }
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=1_000_000)
    lines = []
    for line in body.splitlines():
        comment = next((c for k, c in _SECTION_COMMENTS.items() if line.startswith(k)), None)
        if comment:
            lines += ["", comment]
        lines.append(line)
    return _EXPORT_HEADER + "\n".join(lines) + "\n"


def _export_partner(p: m.Partner) -> dict[str, Any]:
    out: dict[str, Any] = {"id": p.slug, "name": p.name}
    if p.country:
        out["country"] = p.country
    if p.sector:
        out["sector"] = p.sector
    out["kind"] = p.kind
    out["clearance"] = tlp_name(TLP(p.clearance))
    if not p.active:
        out["active"] = False
    if p.identity_id != partner_identity(p.slug):
        out["identity"] = p.identity_id
    acs = {
        k: v
        for k, v in (
            ("organization", p.acs_organization),
            ("shareability", split_list(p.acs_shareability)),
            ("entity", split_list(p.acs_entity)),
        )
        if v
    }
    if acs:
        out["acs"] = acs
    return out


def _export_groups(session: Session) -> list[dict[str, Any]]:
    members: dict[int, list[str]] = {}
    stmt = select(m.TrustGroupMember.group_id, m.Partner.slug).join(
        m.Partner, m.Partner.id == m.TrustGroupMember.partner_id
    )
    for group_id, slug in session.execute(stmt):
        members.setdefault(group_id, []).append(slug)
    return [
        {
            "id": g.slug,
            "name": g.name,
            "members": sorted(members.get(g.id, [])),
            "countries": sorted(split_list(g.countries)),
        }
        for g in session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.id))
    ]


def _export_roots(session: Session) -> list[dict[str, Any]]:
    out = []
    for root in session.scalars(select(m.ApiRoot).order_by(m.ApiRoot.id)):
        item: dict[str, Any] = {"id": root.slug, "title": root.title}
        if root.description:
            item["description"] = root.description
        item["max_content_length"] = root.max_content_length
        stmt = (
            select(m.Collection)
            .where(m.Collection.api_root_id == root.id, m.Collection.is_reference.is_(False))
            .order_by(m.Collection.id)
        )
        item["collections"] = [_export_collection(root.slug, c) for c in session.scalars(stmt)]
        out.append(item)
    return out


def _export_collection(root: str, c: m.Collection) -> dict[str, Any]:
    values = collection_values(c)
    out: dict[str, Any] = {}
    if c.uuid != collection_uuid(root, c.alias):
        out["id"] = c.uuid
    out["alias"] = c.alias
    out["title"] = c.title
    if c.description:
        out["description"] = c.description
    out["max_tlp"] = tlp_name(values["max_tlp"])
    out["default_tlp"] = tlp_name(values["default_tlp"])
    out["types"] = list(values["types"])
    out["readers"] = list(values["readers"])
    out["writers"] = list(values["writers"])
    if c.is_feedback:
        out["feedback"] = True
    if c.retention_days is not None:
        out["retention_days"] = c.retention_days
    for key, default in (
        ("blocklist_ipv4_prefix", BlocklistLimits.ipv4_prefix),
        ("blocklist_ipv6_prefix", BlocklistLimits.ipv6_prefix),
        ("blocklist_allow_warninglisted", BlocklistLimits.allow_warninglisted),
        ("false_positive_threshold", 0),
        ("false_positive_withdraw", False),
    ):
        if getattr(c, key) != default:
            out[key] = getattr(c, key)
    return out
