"""The ``partners`` and ``trust_groups`` sections of sharing.yaml."""

from __future__ import annotations

import re
import uuid

from yaml import Node

from hub import acs
from hub.policy import TLP
from hub.sharing.spec import HUB_SLUG, KINDS, GroupSpec, PartnerSpec, hub_identity, partner_identity
from hub.sharing.yaml_reader import Reader, peek, unique

_SLUG = re.compile(r"[a-z0-9-]{2,64}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_SLUG_HINT = "use 2-64 characters of a-z, 0-9 and -"


def parse_partners(r: Reader, nodes: list[Node]) -> list[PartnerSpec]:
    """Read the ``partners`` items; ids and identities must be unique, and none the hub's own."""
    out: list[PartnerSpec] = []
    slugs: dict[str, int] = {}
    identities: dict[str, int] = {}
    for node in nodes:
        spec = _parse_partner(r, node)
        if spec is None:
            continue
        if spec.slug in slugs:
            unique(r, node, "partner id", spec.slug, slugs)
            continue
        slugs[spec.slug] = spec.line
        if spec.identity == hub_identity():
            r.error(node, f"identity {spec.identity} of partner {spec.slug} is the hub's own identity")
        unique(r, node, "partner identity", spec.identity, identities)
        out.append(spec)
    return out


_PARTNER_KEYS = ("country", "sector", "kind", "clearance", "active", "identity", "acs")
_ACS_ORGANISATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_COUNTRY_HINT = "use an ISO 3166 alpha-2 code such as KR"


def _parse_partner(r: Reader, node: Node) -> PartnerSpec | None:
    what = f"partner {peek(node, 'id') or '(no id)'}"
    keys = r.mapping(node, what, ("id", "name"), _PARTNER_KEYS)
    slug = r.text(keys.get("id"), "partner id", max_len=64, pattern=_SLUG, hint=_SLUG_HINT)
    if slug == HUB_SLUG:
        r.error(keys["id"], "partner id 'hub' is reserved for the hub itself")
    name = r.text(keys.get("name"), f"name of {what}")
    country = r.text(keys.get("country"), f"country of {what}", pattern=_COUNTRY, default="", hint=_COUNTRY_HINT)
    sector = r.text(keys.get("sector"), f"sector of {what}", max_len=64, default="")
    kind = r.text(
        keys.get("kind"),
        f"kind of {what}",
        default="cert",
        hint=f"use one of {', '.join(KINDS)}",
        pattern=re.compile("|".join(KINDS)),
    )
    clearance = r.tlp(keys["clearance"], f"clearance of {what}") if "clearance" in keys else TLP.RED
    active = r.flag(keys["active"], f"active of {what}") if "active" in keys else True
    identity = r.text(keys.get("identity"), f"identity of {what}", max_len=80, default="")
    if identity:
        identity = _parse_identity(r, keys["identity"], identity, what)
    organization, shareability, entity = _parse_acs(r, keys.get("acs"), what)
    if slug is None or name is None:
        return None
    return PartnerSpec(
        slug,
        name,
        (country or "").upper(),
        sector or "",
        kind or "cert",
        clearance if clearance is not None else TLP.RED,
        bool(active),
        identity or partner_identity(slug),
        bool(identity),
        node.start_mark.line + 1,
        organization,
        shareability,
        entity,
    )


def _parse_acs(r: Reader, node: Node | None, what: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A partner's ACS 3.0 attributes: ``acs: {organization: USA.DHS.CISA, shareability: [NCC], entity: [GOV]}``."""
    if node is None:
        return "", (), ()
    keys = r.mapping(node, f"acs of {what}", (), ("organization", "shareability", "entity"))
    organization = r.text(
        keys.get("organization"),
        f"ACS organization of {what}",
        max_len=100,
        pattern=_ACS_ORGANISATION,
        default="",
        hint="use an ACS organisation token such as USA.DHS.CISA",
    )
    lists = []
    for name, vocabulary in (("shareability", acs.SHAREABILITY), ("entity", acs.ENTITIES)):
        found = []
        for item in r.items(keys.get(name), f"ACS {name} of {what}"):
            value = r.text(
                item,
                f"ACS {name} of {what}",
                pattern=re.compile("|".join(sorted(vocabulary))),
                hint=f"use one of {', '.join(sorted(vocabulary))}",
            )
            if value:
                found.append(value)
        lists.append(tuple(sorted(set(found))))
    return organization or "", lists[0], lists[1]


def _parse_identity(r: Reader, node: Node, text: str, what: str) -> str:
    prefix, _, rest = text.partition("--")
    try:
        if prefix != "identity":
            raise ValueError(text)
        return f"identity--{uuid.UUID(rest)}"
    except ValueError:
        r.error(node, f"bad identity of {what}: {text!r} (use identity--<uuid>)")
        return ""


def _parse_countries(r: Reader, node: Node | None, what: str) -> tuple[str, ...]:
    found: set[str] = set()
    for item in r.items(node, f"countries of {what}"):
        code = r.text(item, f"country in {what}", pattern=_COUNTRY, hint=_COUNTRY_HINT)
        if code:
            found.add(code.upper())
    return tuple(sorted(found))


def parse_groups(r: Reader, nodes: list[Node], partners: set[str]) -> list[GroupSpec]:
    """Read the ``trust_groups`` items; members must be among ``partners``."""
    out: list[GroupSpec] = []
    seen: dict[str, int] = {}
    for node in nodes:
        what = f"trust group {peek(node, 'id') or '(no id)'}"
        keys = r.mapping(node, what, ("id", "name"), ("members", "countries"))
        slug = r.text(keys.get("id"), "trust group id", max_len=64, pattern=_SLUG, hint=_SLUG_HINT)
        name = r.text(keys.get("name"), f"name of {what}")
        members: set[str] = set()
        for item in r.items(keys.get("members"), f"members of {what}"):
            member = r.text(item, f"member of {what}", max_len=64)
            if member is not None and member not in partners:
                r.error(item, f"unknown partner {member!r} in members of {what}")
            elif member is not None:
                members.add(member)
        countries = _parse_countries(r, keys.get("countries"), what)
        if slug is not None and name is not None:
            unique(r, node, "trust group id", slug, seen)
            out.append(GroupSpec(slug, name, tuple(sorted(members)), countries, node.start_mark.line + 1))
    return out
