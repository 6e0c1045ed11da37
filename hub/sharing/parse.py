"""Reading sharing.yaml: every problem found, each named with its ``file:line``."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml import Node

from hub import acs, formats, policy
from hub.errors import ConfigError
from hub.policy import TLP
from hub.sharing.spec import (
    DEFAULT_MAX_CONTENT_LENGTH,
    HUB_SLUG,
    KINDS,
    REFERENCE_ALIAS,
    RESERVED_ROOTS,
    ApiRootSpec,
    CollectionSpec,
    GroupSpec,
    PartnerSpec,
    SharingSpec,
    collection_uuid,
    hub_identity,
    partner_identity,
    tlp_name,
)

_SLUG = re.compile(r"[a-z0-9-]{2,64}")
_ROOT = re.compile(r"[a-z0-9_-]{1,64}")
_ALIAS = re.compile(r"[a-z0-9_-]{1,64}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_STIX_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")


class _Reader:
    """Walk a composed YAML node tree, collecting every problem with its line number."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[tuple[int, str]] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def error(self, node: Node, message: str) -> None:
        self.errors.append((node.start_mark.line + 1, message))

    def fail(self) -> None:
        """Raise one ConfigError listing every problem found, in file order."""
        if self.errors:
            lines = sorted(set(self.errors))
            raise ConfigError("\n".join(f"{self.source}:{line}: {msg}" for line, msg in lines))

    def mapping(self, node: Node, what: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Node]:
        """Return a mapping's values by key; unknown, duplicate and missing keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return {}
        known = required + optional
        out: dict[str, Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in known:
                shown = repr(key) if key is not None else "(not a name)"
                self.error(key_node, f"unknown key {shown} in {what} (known: {', '.join(known)})")
            elif key in out:
                self.error(key_node, f"duplicate key {key!r} in {what}")
            else:
                out[key] = value
        for key in required:
            if key not in out:
                self.error(node, f"{what} lacks the required key {key!r}")
        return out

    def items(self, node: Node | None, what: str) -> list[Node]:
        """Return a sequence's items; an absent or empty value is an empty list."""
        if node is None or self._is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{what} must be a list")
            return []
        return list(node.value)

    def text(
        self,
        node: Node | None,
        what: str,
        *,
        max_len: int = 200,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        default: str | None = None,
    ) -> str | None:
        """Return a scalar as text exactly as written (so ``NO`` stays Norway, not false).

        ``default`` is returned for an absent or empty optional value; a required one
        (``default=None``) that is empty is an error, and an absent one was already
        reported by ``mapping``.
        """
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{what} must be a single value")
            return None
        value = "" if self._is_null(node) else node.value.strip()
        if not value:
            if default is None:
                self.error(node, f"{what} must not be empty")
            return default
        if len(value) > max_len or (pattern is not None and not pattern.fullmatch(value)):
            self.error(node, f"bad {what}: {value!r}" + (f" ({hint})" if hint else ""))
            return None
        return value

    def flag(self, node: Node, what: str) -> bool | None:
        value = self._scalar(node)
        if not isinstance(value, bool):
            self.error(node, f"{what} must be true or false")
            return None
        return value

    def integer(self, node: Node, what: str) -> int | None:
        value = self._scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.error(node, f"{what} must be a positive integer")
            return None
        return value

    def tlp(self, node: Node, what: str) -> TLP | None:
        text = self.text(node, what, max_len=40)
        if text is None:
            return None
        try:
            return TLP.parse(text)
        except ValueError as exc:
            self.error(node, f"{what}: {exc}")
            return None

    def _scalar(self, node: Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError:  # an explicit tag SafeLoader refuses, e.g. !!python/name
            return None

    @staticmethod
    def _is_null(node: Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def load(path: str | Path) -> SharingSpec:
    """Parse and validate a sharing configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sharing configuration {path}: {exc}") from None
    return loads(text, str(path))


def loads(text: str, source: str = "<string>") -> SharingSpec:
    """Parse and validate a sharing configuration given as text; ``source`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{mark.line + 1}:" if mark is not None else ""
        raise ConfigError(f"{source}:{line} {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if root is None:
        raise ConfigError(f"{source}:1: the file is empty")
    reader = _Reader(source)
    spec = _parse(reader, root)
    reader.fail()
    return spec


def _parse(r: _Reader, root: Node) -> SharingSpec:
    top = r.mapping(root, "the file", ("hub",), ("partners", "trust_groups", "api_roots"))
    hub = r.mapping(top["hub"], "hub", ("name",), ("contact",)) if "hub" in top else {}
    name = r.text(hub.get("name"), "hub name")
    contact = r.text(hub.get("contact"), "hub contact", default="")
    partners = _parse_partners(r, r.items(top.get("partners"), "partners"))
    known = {p.slug for p in partners}
    groups = _parse_groups(r, r.items(top.get("trust_groups"), "trust_groups"), known)
    roots = _parse_roots(r, r.items(top.get("api_roots"), "api_roots"), known, {g.slug for g in groups})
    return SharingSpec(name or "cti-hub", contact or "", tuple(partners), tuple(groups), tuple(roots), r.source)


def _peek(node: Node, key: str) -> str | None:
    """Return a mapping's scalar ``key`` before validation, to name the entity in messages."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.ScalarNode):
                return str(v.value)
    return None


def _unique(r: _Reader, node: Node, kind: str, value: str, seen: dict[str, int], where: str = "") -> None:
    if value in seen:
        r.error(node, f"duplicate {kind} {value!r}{where} (first defined on line {seen[value]})")
    else:
        seen[value] = node.start_mark.line + 1


# --------------------------------------------------------------------- partners and groups

_SLUG_HINT = "use 2-64 characters of a-z, 0-9 and -"


def _parse_partners(r: _Reader, nodes: list[Node]) -> list[PartnerSpec]:
    out: list[PartnerSpec] = []
    slugs: dict[str, int] = {}
    identities: dict[str, int] = {}
    for node in nodes:
        spec = _parse_partner(r, node)
        if spec is None:
            continue
        if spec.slug in slugs:
            _unique(r, node, "partner id", spec.slug, slugs)
            continue
        slugs[spec.slug] = spec.line
        if spec.identity == hub_identity():
            r.error(node, f"identity {spec.identity} of partner {spec.slug} is the hub's own identity")
        _unique(r, node, "partner identity", spec.identity, identities)
        out.append(spec)
    return out


_PARTNER_KEYS = ("country", "sector", "kind", "clearance", "active", "identity", "acs")
_ACS_ORGANISATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_COUNTRY_HINT = "use an ISO 3166 alpha-2 code such as KR"


def _parse_partner(r: _Reader, node: Node) -> PartnerSpec | None:
    what = f"partner {_peek(node, 'id') or '(no id)'}"
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


def _parse_acs(r: _Reader, node: Node | None, what: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
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


def _parse_identity(r: _Reader, node: Node, text: str, what: str) -> str:
    prefix, _, rest = text.partition("--")
    try:
        if prefix != "identity":
            raise ValueError(text)
        return f"identity--{uuid.UUID(rest)}"
    except ValueError:
        r.error(node, f"bad identity of {what}: {text!r} (use identity--<uuid>)")
        return ""


def _parse_countries(r: _Reader, node: Node | None, what: str) -> tuple[str, ...]:
    found: set[str] = set()
    for item in r.items(node, f"countries of {what}"):
        code = r.text(item, f"country in {what}", pattern=_COUNTRY, hint=_COUNTRY_HINT)
        if code:
            found.add(code.upper())
    return tuple(sorted(found))


def _parse_groups(r: _Reader, nodes: list[Node], partners: set[str]) -> list[GroupSpec]:
    out: list[GroupSpec] = []
    seen: dict[str, int] = {}
    for node in nodes:
        what = f"trust group {_peek(node, 'id') or '(no id)'}"
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
            _unique(r, node, "trust group id", slug, seen)
            out.append(GroupSpec(slug, name, tuple(sorted(members)), countries, node.start_mark.line + 1))
    return out


# --------------------------------------------------------------------- API roots and collections


@dataclass
class _RootContext:
    """What collection parsing needs to know about its API root and the rest of the file."""

    root: str
    partners: set[str]
    groups: set[str]
    uuids: dict[str, int]


def _parse_roots(r: _Reader, nodes: list[Node], partners: set[str], groups: set[str]) -> list[ApiRootSpec]:
    out: list[ApiRootSpec] = []
    seen: dict[str, int] = {}
    uuids: dict[str, int] = {}
    for node in nodes:
        what = f"API root {_peek(node, 'id') or '(no id)'}"
        keys = r.mapping(node, what, ("id", "title"), ("description", "max_content_length", "collections"))
        slug = r.text(keys.get("id"), "API root id", max_len=64)
        if slug in RESERVED_ROOTS:
            r.error(keys["id"], f"API root id {slug!r} is reserved (the hub's own routes use it)")
            slug = None
        elif slug is not None and not _ROOT.fullmatch(slug):
            r.error(keys["id"], f"bad API root id: {slug!r} (use 1-64 characters of a-z, 0-9, - and _)")
            slug = None
        title = r.text(keys.get("title"), f"title of {what}")
        description = r.text(keys.get("description"), f"description of {what}", max_len=10_000, default="")
        size = (
            r.integer(keys["max_content_length"], f"max_content_length of {what}")
            if "max_content_length" in keys
            else DEFAULT_MAX_CONTENT_LENGTH
        )
        if slug is None or title is None:
            continue
        _unique(r, node, "API root id", slug, seen)
        ctx = _RootContext(slug, partners, groups, uuids)
        collections = _parse_collections(r, r.items(keys.get("collections"), f"collections of {what}"), ctx)
        out.append(
            ApiRootSpec(
                slug,
                title,
                description or "",
                size or DEFAULT_MAX_CONTENT_LENGTH,
                tuple(collections),
                node.start_mark.line + 1,
            )
        )
    return out


def _parse_collections(r: _Reader, nodes: list[Node], ctx: _RootContext) -> list[CollectionSpec]:
    out: list[CollectionSpec] = []
    aliases: dict[str, int] = {}
    reference = collection_uuid(ctx.root, REFERENCE_ALIAS)
    for node in nodes:
        spec = _parse_collection(r, node, ctx)
        if spec is None:
            continue
        if spec.alias in aliases:
            _unique(r, node, "collection alias", spec.alias, aliases, f" in API root {ctx.root}")
            continue
        aliases[spec.alias] = node.start_mark.line + 1
        if spec.uuid == reference:
            r.error(node, f"collection id {spec.uuid} is the id of the reference collection of {ctx.root}")
        _unique(r, node, "collection id", spec.uuid, ctx.uuids)
        out.append(spec)
    return out


_COLLECTION_KEYS = (
    "id",
    "description",
    "max_tlp",
    "default_tlp",
    "types",
    "readers",
    "writers",
    "retention_days",
    "blocklist_ipv4_prefix",
    "blocklist_ipv6_prefix",
    "blocklist_allow_warninglisted",
)
MAX_RETENTION_DAYS = 36_500


def _parse_collection(r: _Reader, node: Node, ctx: _RootContext) -> CollectionSpec | None:
    what = f"collection {ctx.root}/{_peek(node, 'alias') or '(no alias)'}"
    keys = r.mapping(node, what, ("alias", "title", "max_tlp"), _COLLECTION_KEYS)
    alias = r.text(
        keys.get("alias"),
        f"alias of {what}",
        max_len=64,
        pattern=_ALIAS,
        hint="use 1-64 characters of a-z, 0-9, - and _",
    )
    if alias == REFERENCE_ALIAS:
        r.error(
            keys["alias"],
            f"collection alias 'reference' is reserved: every API root gets a read-only "
            f"reference collection automatically; remove {what}",
        )
        return None
    title = r.text(keys.get("title"), f"title of {what}")
    description = r.text(keys.get("description"), f"description of {what}", max_len=10_000, default="")
    max_tlp = r.tlp(keys["max_tlp"], f"max_tlp of {what}") if "max_tlp" in keys else None
    default_tlp = r.tlp(keys["default_tlp"], f"default_tlp of {what}") if "default_tlp" in keys else max_tlp
    if max_tlp is not None and default_tlp is not None and default_tlp > max_tlp:
        r.error(
            keys["default_tlp"],
            f"default_tlp {tlp_name(default_tlp)} of {what} is above its max_tlp {tlp_name(max_tlp)}",
        )
    explicit = _parse_uuid(r, keys.get("id"), what)
    types = _parse_types(r, keys.get("types"), what)
    readers = _parse_grants(r, keys.get("readers"), "readers", what, ctx)
    writers = _parse_grants(r, keys.get("writers"), "writers", what, ctx)
    retention = _parse_retention(r, keys.get("retention_days"), what)
    ipv4 = _parse_prefix(r, keys, "blocklist_ipv4_prefix", formats.IPV4_PREFIX_BOUNDS, what)
    ipv6 = _parse_prefix(r, keys, "blocklist_ipv6_prefix", formats.IPV6_PREFIX_BOUNDS, what)
    allow_node = keys.get("blocklist_allow_warninglisted")
    allow = r.flag(allow_node, f"blocklist_allow_warninglisted of {what}") if allow_node is not None else False
    if alias is None or title is None or max_tlp is None or default_tlp is None:
        return None
    return CollectionSpec(
        alias,
        explicit or collection_uuid(ctx.root, alias),
        title,
        description or "",
        max_tlp,
        default_tlp,
        types,
        readers,
        writers,
        False,
        bool(explicit),
        node.start_mark.line + 1,
        retention,
        formats.BlocklistLimits.ipv4_prefix if ipv4 is None else ipv4,
        formats.BlocklistLimits.ipv6_prefix if ipv6 is None else ipv6,
        bool(allow),
    )


def _parse_retention(r: _Reader, node: Node | None, what: str) -> int | None:
    """Return ``retention_days`` (absent or null: keep every version), or None after reporting a bad value."""
    if node is None or r._is_null(node):
        return None
    value = r._scalar(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_DAYS:
        shown = node.value if isinstance(node, yaml.ScalarNode) else "(not a single value)"
        r.error(
            node,
            f"bad retention_days of {what}: {shown!r} (use a whole number of days from 1 to "
            f"{MAX_RETENTION_DAYS}, or leave it out to keep every version)",
        )
        return None
    return value


def _parse_prefix(r: _Reader, keys: dict[str, Node], key: str, bounds: tuple[int, int], what: str) -> int | None:
    """Return a blocklist prefix limit (absent: None, the default), or None after reporting a bad value."""
    node = keys.get(key)
    if node is None:
        return None
    value = r._scalar(node)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        shown = node.value if isinstance(node, yaml.ScalarNode) else "(not a single value)"
        r.error(
            node,
            f"bad {key} of {what}: {shown!r} (use a prefix length from {bounds[0]} to {bounds[1]}; "
            f"a wider limit would let one indicator block a large part of the internet)",
        )
        return None
    return value


def _parse_uuid(r: _Reader, node: Node | None, what: str) -> str:
    text = r.text(node, f"id of {what}", max_len=64, default="")
    if not text:
        return ""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        r.error(node, f"bad id of {what}: {text!r} (TAXII collection ids are UUIDs)")  # type: ignore[arg-type]
        return ""


def _parse_types(r: _Reader, node: Node | None, what: str) -> tuple[str, ...]:
    found: set[str] = set()
    for item in r.items(node, f"types of {what}"):
        name = r.text(
            item,
            f"STIX type in {what}",
            max_len=250,
            pattern=_STIX_TYPE,
            hint="STIX type names are 3-250 characters of a-z, 0-9 and -",
        )
        if name:
            found.add(name)
    return tuple(sorted(found))


def _parse_grants(r: _Reader, node: Node | None, kind: str, what: str, ctx: _RootContext) -> tuple[str, ...]:
    entries: list[str] = []
    for item in r.items(node, f"{kind} of {what}"):
        text = r.text(item, f"entry in {kind} of {what}", max_len=80)
        if text is None:
            continue
        if text == policy.EVERYONE:
            entries.append(text)
        elif text.startswith("group:") and text.removeprefix("group:") not in ctx.groups:
            r.error(item, f"unknown trust group {text.removeprefix('group:')!r} in {kind} of {what}")
        elif text.startswith("partner:") and text.removeprefix("partner:") not in ctx.partners:
            r.error(item, f"unknown partner {text.removeprefix('partner:')!r} in {kind} of {what}")
        elif text.startswith(("group:", "partner:")):
            entries.append(text)
        else:
            r.error(item, f'bad entry {text!r} in {kind} of {what}: use "*", "group:<id>" or "partner:<id>"')
    return tuple(policy.Grants.parse(entries).entries())
