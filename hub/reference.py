"""The reference collection: the hub's identity, partners' identities, TLP and group markings.

Every API root has one, which every partner reads; ``publish_reference`` brings it up to date after
each change of the sharing configuration.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import models as m
from hub import stix
from hub.ids import FEEDBACK_SHARE_ID, SHARING_EXTENSION_ID
from hub.policy import TLP
from hub.store import clock, snapshots, writes

REFERENCE_CREATED = "2024-01-01T00:00:00.000Z"


def reference_objects(session: Session) -> list[dict]:
    """Build what every API root's reference collection holds, from the current configuration."""
    state = session.get(m.HubState, 1)
    assert state is not None
    objs: list[dict] = [
        _identity(
            state.identity_id,
            state.name,
            "organization",
            REFERENCE_CREATED,
            {"contact_information": state.contact} if state.contact else {},
        )
    ]
    for p in session.scalars(select(m.Partner).where(m.Partner.kind != "hub").order_by(m.Partner.slug)):
        extra: dict[str, Any] = {"sectors": [p.sector]} if p.sector else {}
        extra["x_cti_hub_partner"] = p.slug
        objs.append(_identity(p.identity_id, p.name, "organization", stix.format_timestamp(p.created_us), extra))
    objs += [stix.TLP2_EXTENSION_DEFINITION, *stix.TLP2_MARKINGS.values(), *stix.TLP1_MARKINGS.values()]
    objs.append(sharing_extension_definition(state.identity_id))
    objs.append(feedback_share_marking())
    for group in session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.slug)):
        objs.append(group_marking(group.marking_id, group.slug, group.name))
    return objs


def _identity(identity_id: str, name: str, klass: str, created: str, extra: dict) -> dict:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_id,
        "created": created,
        "modified": created,
        "name": name,
        "identity_class": klass,
        **extra,
    }


def sharing_extension_definition(hub_identity: str) -> dict:
    """The STIX extension-definition of the hub's sharing-restriction marking."""
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": SHARING_EXTENSION_ID,
        "created_by_ref": hub_identity,
        "created": REFERENCE_CREATED,
        "modified": REFERENCE_CREATED,
        "name": "Sharing restriction",
        "description": "Restricts who may receive an object: share_with lists partners, trust groups and "
        "countries (a union); exclude_partners removes partners; no_federation keeps the object "
        "inside this hub. Several sharing markings on one object all apply.",
        "schema": "https://github.com/cti-hub/cti-hub/blob/main/README.md#sharing-markings",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def feedback_share_marking() -> dict:
    """The statement marking with which a reporter releases its sighting or opinion to the object's recipients."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": FEEDBACK_SHARE_ID,
        "created": REFERENCE_CREATED,
        "name": "Feedback: share with the recipients of the object",
        "definition_type": "statement",
        "definition": {
            "statement": "cti-hub: release this sighting or opinion to the partners that receive the object it is "
            "about (under its own TLP and sharing markings and the object's); without this marking they "
            "receive anonymous counts only."
        },
    }


def group_marking(marking_id: str, slug: str, name: str) -> dict:
    """The ready-made sharing marking that restricts an object to one trust group."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": REFERENCE_CREATED,
        "name": f"Share with: {name}",
        "extensions": {
            SHARING_EXTENSION_ID: {
                "extension_type": "property-extension",
                "share_with": {"partners": [], "groups": [slug], "countries": []},
                "exclude_partners": [],
                "no_federation": False,
            }
        },
    }


def publish_reference(session: Session) -> int:
    """Bring every reference collection and the markings table up to date; return the versions added."""
    hub_partner = session.execute(select(m.Partner).where(m.Partner.slug == "hub")).scalar_one()
    objs = reference_objects(session)
    _register_reference_markings(session, objs, hub_partner.id)
    snapshots.bump_rules(session)
    clock.lock_clock(session)
    rows = []
    for collection in session.scalars(select(m.Collection).where(m.Collection.is_reference.is_(True))):
        current = {
            v.stix_id: v
            for v in session.scalars(select(m.ObjectVersion).where(m.ObjectVersion.collection_id == collection.id))
        }
        for obj in objs:
            row = _reference_row(obj, current.get(obj["id"]), collection.id, hub_partner.id)
            if row is not None:
                rows.append(row)
    writes.add_versions(session, rows)
    for collection_pk in {row["collection_id"] for row in rows}:
        writes.refresh_newer(
            session, collection_pk, [r["stix_id"] for r in rows if r["collection_id"] == collection_pk]
        )
    return len(rows)


def _reference_row(obj: dict, latest: m.ObjectVersion | None, collection_pk: int, hub_pk: int) -> dict | None:
    if latest is not None and orjson.loads(latest.raw) == obj:
        return None
    if latest is not None and "modified" in obj:
        # A changed identity or group name becomes a new version, strictly later than the stored one.
        stamp = max(clock.now_us(), latest.version_us + 1000)
        obj = {**obj, "modified": stix.format_timestamp(stamp // 1000 * 1000)}
    elif latest is not None:
        return None  # markings are immutable: keep the first
    version = stix.object_version(obj)
    return {
        "collection_id": collection_pk,
        "stix_id": obj["id"],
        "type": obj["type"],
        "version": version,
        "version_us": stix.parse_timestamp(version),
        "spec_version": "2.1",
        "originator_id": hub_pk,
        "tlp": int(TLP.CLEAR),
        "restriction_set_id": None,
        "unknown_markings": False,
        "raw": orjson.dumps(obj).decode(),
    }


def _register_reference_markings(session: Session, objs: list[dict], hub_pk: int) -> None:
    known = set(session.scalars(select(m.Marking.id)))
    for obj in objs:
        if obj["type"] != "marking-definition" or obj["id"] in known:
            continue
        level = stix.marking_tlp(obj["id"])
        if stix.is_statement_marking(obj):
            session.add(m.Marking(id=obj["id"], kind="statement", raw=orjson.dumps(obj).decode(), originator_id=hub_pk))
            continue
        ext = (obj.get("extensions") or {}).get(SHARING_EXTENSION_ID, {})
        share = ext.get("share_with", {})
        session.add(
            m.Marking(
                id=obj["id"],
                kind="tlp" if level is not None else "sharing",
                tlp=None if level is None else int(level),
                share_partners=",".join(share.get("partners", [])),
                share_groups=",".join(share.get("groups", [])),
                share_countries=",".join(share.get("countries", [])),
                exclude_partners="",
                no_federation=False,
                raw=orjson.dumps(obj).decode(),
                originator_id=hub_pk,
            )
        )
    session.flush()
