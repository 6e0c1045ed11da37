"""Build sharing worlds directly in the database, and talk TAXII to the Flask app."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import accounts
from hub import models as m
from hub.ids import HUB_NAMESPACE, SHARING_EXTENSION_ID
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import snapshots

TAXII = "application/taxii+json;version=2.1"
CLOCK = "2024-05-01T00:00:00.000Z"
GREEN_MARKING = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"  # TLP 2.0 GREEN


def hub_partner(session: Session) -> m.Partner:
    state = session.get(m.HubState, 1)
    assert state is not None
    state.name, state.identity_id = "Test hub", f"identity--{uuid.uuid5(HUB_NAMESPACE, 'hub')}"
    partner = m.Partner(slug="hub", name="Test hub", kind="hub", identity_id=state.identity_id)
    session.add(partner)
    session.flush()
    return partner


def add_partner(
    session: Session, slug: str, country: str = "KR", clearance: TLP = TLP.RED, active: bool = True, kind: str = "cert"
) -> m.Partner:
    partner = m.Partner(
        slug=slug,
        name=slug.upper(),
        country=country,
        clearance=int(clearance),
        active=active,
        kind=kind,
        identity_id=f"identity--{uuid.uuid5(HUB_NAMESPACE, slug)}",
    )
    session.add(partner)
    session.flush()
    return partner


def add_group(
    session: Session, slug: str, members: Iterable[m.Partner] = (), countries: Iterable[str] = ()
) -> m.TrustGroup:
    group = m.TrustGroup(
        slug=slug,
        name=slug.upper(),
        countries=",".join(countries),
        marking_id=f"marking-definition--{uuid.uuid5(HUB_NAMESPACE, 'group:' + slug)}",
    )
    session.add(group)
    session.flush()
    for partner in members:
        session.add(m.TrustGroupMember(group_id=group.id, partner_id=partner.id))
    return group


def add_root(session: Session, slug: str = "dprk", max_content_length: int = 10 * 1024 * 1024) -> m.ApiRoot:
    root = m.ApiRoot(slug=slug, title=f"{slug} root", max_content_length=max_content_length)
    session.add(root)
    session.flush()
    return root


def add_collection(
    session: Session,
    root: m.ApiRoot,
    alias: str,
    *,
    max_tlp: TLP = TLP.RED,
    default_tlp: TLP = TLP.GREEN,
    readers: Iterable[str] = ("*",),
    writers: Iterable[str] = ("*",),
    types: Iterable[str] = (),
    reference: bool = False,
    allow_warninglisted: bool = False,
    feedback: bool = False,
) -> m.Collection:
    """Add a collection; ``allow_warninglisted`` lets its blocklists list the documentation-range values
    (RFC 5737, RFC 2606) that the factories' indicators use, as tests of other rules need."""
    collection = m.Collection(
        uuid=str(uuid.uuid5(HUB_NAMESPACE, f"{root.slug}/{alias}")),
        api_root_id=root.id,
        alias=alias,
        title=f"{alias} collection",
        max_tlp=int(max_tlp),
        default_tlp=int(default_tlp),
        types=",".join(types),
        readers=",".join(readers),
        writers=",".join(writers),
        is_reference=reference,
        blocklist_allow_warninglisted=allow_warninglisted,
        is_feedback=feedback,
    )
    session.add(collection)
    session.flush()
    snapshots.bump_rules(session)
    return collection


def key_for(hub: Hub, slug: str, **kwargs: Any) -> str:
    with hub.session() as session:
        return accounts.create_key(session, hub.pepper, slug, **kwargs)[1]


def indicator(
    n: int, *, markings: Iterable[str] = (), created_by: str | None = None, modified: str = CLOCK, **extra: Any
) -> dict:
    obj = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_OID, str(n))}",
        "created": CLOCK,
        "modified": modified,
        "name": f"Lazarus C2 {n}",
        "pattern": f"[ipv4-addr:value = '198.51.100.{n % 250}']",
        "pattern_type": "stix",
        "valid_from": CLOCK,
        "indicator_types": ["malicious-activity"],
    }
    if markings:
        obj["object_marking_refs"] = list(markings)
    if created_by:
        obj["created_by_ref"] = created_by
    obj.update(extra)
    return obj


def sharing_marking(
    marking_id: str,
    *,
    partners: Iterable[str] = (),
    groups: Iterable[str] = (),
    countries: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> dict:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": CLOCK,
        "name": "Share with: test",
        "extensions": {
            SHARING_EXTENSION_ID: {
                "extension_type": "property-extension",
                "share_with": {"partners": list(partners), "groups": list(groups), "countries": list(countries)},
                "exclude_partners": list(exclude),
                "no_federation": False,
            }
        },
    }


class Client:
    """A TAXII client over Flask's test client, authenticated as one partner."""

    def __init__(self, flask_client: Any, secret: str | None, scheme: str = "bearer", user: str = "") -> None:
        self.http, self.secret, self.scheme, self.user = flask_client, secret, scheme, user

    def headers(self, extra: dict | None = None) -> dict:
        out = {"Accept": TAXII}
        if self.secret and self.scheme == "bearer":
            out["Authorization"] = f"Bearer {self.secret}"
        elif self.secret:
            out["Authorization"] = "Basic " + base64.b64encode(f"{self.user}:{self.secret}".encode()).decode()
        out.update(extra or {})
        return out

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> Any:
        return self.http.get(path, query_string=params or {}, headers=self.headers(headers))

    def post(
        self, path: str, objects: list[dict] | None = None, body: bytes | None = None, headers: dict | None = None
    ) -> Any:
        data = body if body is not None else orjson.dumps({"objects": objects})
        return self.http.post(path, data=data, headers=self.headers({"Content-Type": TAXII, **(headers or {})}))

    def delete(self, path: str, params: dict | None = None) -> Any:
        return self.http.delete(path, query_string=params or {}, headers=self.headers())


def cli_env(url: str, tmp_path: Any) -> dict:
    """The environment a `cti-hub` command needs to run on the database at ``url``."""
    return {"CTI_HUB_DATABASE_URL": url, "CTI_HUB_SECRET_KEY": "test-secret-key", "CTI_HUB_DATA_DIR": str(tmp_path)}


def sighting(n: int, target: str, reporter: str, *, count: int = 1, last_seen: str = CLOCK, **extra: Any) -> dict:
    """A partner's sighting of ``target``, seen ``count`` times up to ``last_seen`` (TLP:GREEN)."""
    identity = f"identity--{uuid.uuid5(HUB_NAMESPACE, reporter)}"
    obj = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid5(uuid.NAMESPACE_OID, f'sighting/{n}')}",
        "created": CLOCK,
        "modified": CLOCK,
        "sighting_of_ref": target,
        "created_by_ref": identity,
        "where_sighted_refs": [identity],
        "count": count,
        "first_seen": CLOCK,
        "last_seen": last_seen,
        "object_marking_refs": [GREEN_MARKING],
    }
    obj.update(extra)
    return obj


def false_positive(n: int, target: str, **extra: Any) -> dict:
    """A partner's report that ``target`` is a false positive: a strongly-disagree opinion (TLP:GREEN)."""
    obj = {
        "type": "opinion",
        "spec_version": "2.1",
        "id": f"opinion--{uuid.uuid5(uuid.NAMESPACE_OID, f'opinion/{n}')}",
        "created": CLOCK,
        "modified": CLOCK,
        "opinion": "strongly-disagree",
        "explanation": "benign: our own scanner",
        "object_refs": [target],
        "object_marking_refs": [GREEN_MARKING],
    }
    obj.update(extra)
    return obj
