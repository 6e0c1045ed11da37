"""The sharing configuration file: partners, trust groups, API roots and collections as YAML.

``config/sharing.yaml`` bootstraps a hub and is what ``export`` writes back; at run
time the database is the source of truth. ``load`` parses and validates a file
(every problem names its ``file:line``), ``plan`` lists what ``apply`` would change,
and ``apply`` makes the database match the file:

* partners are never deleted (they have keys, objects and audit history): a
  partner missing from the file is suspended;
* trust groups missing from the file are removed; collections (and API roots)
  missing from the file are removed only when they hold no objects;
* every API root gets a read-only ``reference`` collection, readable by all;
* the hub itself is a partner (slug ``hub``, kind ``hub``): the originator of
  the reference data. It never gets API keys and is not exported.

Ids the file does not spell out are derived with uuid5 on ``NAMESPACE``, so the
same file gives the same STIX identity ids, collection ids and sharing-marking
ids on every hub. ``NAMESPACE`` must never change: it would change every
derived id and break every client that stored one.
"""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from hub import models as m
from hub import policy, store
from hub.errors import ConfigError
from hub.policy import TLP

# Fixed forever: every derived id (identities, collections, group markings) hangs off it.
NAMESPACE = uuid.UUID("565444e7-0cf2-4c0c-beed-e09b599b2698")

HUB_SLUG = "hub"
REFERENCE_ALIAS = "reference"
REFERENCE_TITLE = "Reference data"
REFERENCE_DESCRIPTION = (
    "Read-only: the hub's and the partners' identities, the TLP marking definitions, "
    "the sharing-restriction extension and one ready-made sharing marking per trust group."
)
# Path segments the hub's own routes use: an API root of that name would shadow them.
RESERVED_ROOTS = frozenset(
    {"taxii2", "admin", "feeds", "static", "healthz", "readyz", "metrics", "openapi.json"}
)
KINDS = ("cert", "government", "private", "hub")
DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024

_SLUG = re.compile(r"[a-z0-9-]{2,64}")
_ROOT = re.compile(r"[a-z0-9_-]{1,64}")
_ALIAS = re.compile(r"[a-z0-9_-]{1,64}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_STIX_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")


def partner_identity(slug: str) -> str:
    """Return the STIX identity id a partner gets when the file names none."""
    return f"identity--{uuid.uuid5(NAMESPACE, 'partner:' + slug)}"


def hub_identity() -> str:
    """Return the STIX identity id of the hub itself."""
    return f"identity--{uuid.uuid5(NAMESPACE, 'hub')}"


def group_marking_id(slug: str) -> str:
    """Return the id of a trust group's ready-made sharing marking."""
    return f"marking-definition--{uuid.uuid5(NAMESPACE, 'group:' + slug)}"


def collection_uuid(root: str, alias: str) -> str:
    """Return the TAXII collection id a collection gets when the file names none."""
    return str(uuid.uuid5(NAMESPACE, f"{root}/{alias}"))


# --------------------------------------------------------------------- the parsed file


@dataclass(frozen=True)
class PartnerSpec:
    slug: str
    name: str
    country: str = ""
    sector: str = ""
    kind: str = "cert"
    clearance: TLP = TLP.RED
    active: bool = True
    identity: str = ""
    identity_explicit: bool = False
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class GroupSpec:
    slug: str
    name: str
    members: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class CollectionSpec:
    alias: str
    uuid: str
    title: str
    description: str = ""
    max_tlp: TLP = TLP.AMBER
    default_tlp: TLP = TLP.AMBER
    types: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()
    is_reference: bool = False
    uuid_explicit: bool = False
    line: int = field(default=0, compare=False)
    retention_days: int | None = None  # None: keep every version


@dataclass(frozen=True)
class ApiRootSpec:
    slug: str
    title: str
    description: str = ""
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    collections: tuple[CollectionSpec, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SharingSpec:
    """A validated sharing configuration; ``source`` is the file it came from."""

    hub_name: str
    hub_contact: str
    partners: tuple[PartnerSpec, ...]
    groups: tuple[GroupSpec, ...]
    roots: tuple[ApiRootSpec, ...]
    source: str = "<string>"


@dataclass(frozen=True)
class Change:
    """One difference between the file and the database."""

    kind: str  # "add" | "update" | "remove"
    what: str  # "partner krcert", "trust group asean", "collection dprk/community", "hub"
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "update":
            return f"~ {self.what}: {self.detail}"
        sign = "+" if self.kind == "add" else "-"
        return f"{sign} {self.what} ({self.detail})" if self.detail else f"{sign} {self.what}"


def _tlp_name(level: TLP) -> str:
    return level.name.replace("_", "+")


# --------------------------------------------------------------------- reading YAML with line numbers

Node = yaml.Node


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

    def mapping(self, node: Node, what: str, required: tuple[str, ...],
                optional: tuple[str, ...]) -> dict[str, Node]:
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

    def text(self, node: Node | None, what: str, *, max_len: int = 200,
             pattern: re.Pattern[str] | None = None, hint: str = "",
             default: str | None = None) -> str | None:
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
    return SharingSpec(name or "cti-hub", contact or "", tuple(partners), tuple(groups), tuple(roots),
                       r.source)


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


_PARTNER_KEYS = ("country", "sector", "kind", "clearance", "active", "identity")
_COUNTRY_HINT = "use an ISO 3166 alpha-2 code such as KR"


def _parse_partner(r: _Reader, node: Node) -> PartnerSpec | None:
    what = f"partner {_peek(node, 'id') or '(no id)'}"
    keys = r.mapping(node, what, ("id", "name"), _PARTNER_KEYS)
    slug = r.text(keys.get("id"), "partner id", max_len=64, pattern=_SLUG, hint=_SLUG_HINT)
    if slug == HUB_SLUG:
        r.error(keys["id"], "partner id 'hub' is reserved for the hub itself")
    name = r.text(keys.get("name"), f"name of {what}")
    country = r.text(keys.get("country"), f"country of {what}", pattern=_COUNTRY, default="",
                     hint=_COUNTRY_HINT)
    sector = r.text(keys.get("sector"), f"sector of {what}", max_len=64, default="")
    kind = r.text(keys.get("kind"), f"kind of {what}", default="cert", hint=f"use one of {', '.join(KINDS)}",
                  pattern=re.compile("|".join(KINDS)))
    clearance = r.tlp(keys["clearance"], f"clearance of {what}") if "clearance" in keys else TLP.RED
    active = r.flag(keys["active"], f"active of {what}") if "active" in keys else True
    identity = r.text(keys.get("identity"), f"identity of {what}", max_len=80, default="")
    if identity:
        identity = _parse_identity(r, keys["identity"], identity, what)
    if slug is None or name is None:
        return None
    return PartnerSpec(slug, name, (country or "").upper(), sector or "", kind or "cert",
                       clearance if clearance is not None else TLP.RED, bool(active),
                       identity or partner_identity(slug), bool(identity), node.start_mark.line + 1)


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
        size = r.integer(keys["max_content_length"], f"max_content_length of {what}") \
            if "max_content_length" in keys else DEFAULT_MAX_CONTENT_LENGTH
        if slug is None or title is None:
            continue
        _unique(r, node, "API root id", slug, seen)
        ctx = _RootContext(slug, partners, groups, uuids)
        collections = _parse_collections(r, r.items(keys.get("collections"), f"collections of {what}"), ctx)
        out.append(ApiRootSpec(slug, title, description or "", size or DEFAULT_MAX_CONTENT_LENGTH,
                               tuple(collections), node.start_mark.line + 1))
    return out


def reference_collection(root: str) -> CollectionSpec:
    """Return the reference collection every API root carries: read by all, written only by the hub itself."""
    return CollectionSpec(REFERENCE_ALIAS, collection_uuid(root, REFERENCE_ALIAS), REFERENCE_TITLE,
                          REFERENCE_DESCRIPTION, TLP.CLEAR, TLP.CLEAR, (), (policy.EVERYONE,), (f"partner:{HUB_SLUG}",),
                          is_reference=True)


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


_COLLECTION_KEYS = ("id", "description", "max_tlp", "default_tlp", "types", "readers", "writers", "retention_days")
MAX_RETENTION_DAYS = 36_500


def _parse_collection(r: _Reader, node: Node, ctx: _RootContext) -> CollectionSpec | None:
    what = f"collection {ctx.root}/{_peek(node, 'alias') or '(no alias)'}"
    keys = r.mapping(node, what, ("alias", "title", "max_tlp"), _COLLECTION_KEYS)
    alias = r.text(keys.get("alias"), f"alias of {what}", max_len=64, pattern=_ALIAS,
                   hint="use 1-64 characters of a-z, 0-9, - and _")
    if alias == REFERENCE_ALIAS:
        r.error(keys["alias"], f"collection alias 'reference' is reserved: every API root gets a read-only "
                               f"reference collection automatically; remove {what}")
        return None
    title = r.text(keys.get("title"), f"title of {what}")
    description = r.text(keys.get("description"), f"description of {what}", max_len=10_000, default="")
    max_tlp = r.tlp(keys["max_tlp"], f"max_tlp of {what}") if "max_tlp" in keys else None
    default_tlp = r.tlp(keys["default_tlp"], f"default_tlp of {what}") if "default_tlp" in keys else max_tlp
    if max_tlp is not None and default_tlp is not None and default_tlp > max_tlp:
        r.error(keys["default_tlp"], f"default_tlp {_tlp_name(default_tlp)} of {what} is above its "
                                     f"max_tlp {_tlp_name(max_tlp)}")
    explicit = _parse_uuid(r, keys.get("id"), what)
    types = _parse_types(r, keys.get("types"), what)
    readers = _parse_grants(r, keys.get("readers"), "readers", what, ctx)
    writers = _parse_grants(r, keys.get("writers"), "writers", what, ctx)
    retention = _parse_retention(r, keys.get("retention_days"), what)
    if alias is None or title is None or max_tlp is None or default_tlp is None:
        return None
    return CollectionSpec(alias, explicit or collection_uuid(ctx.root, alias), title, description or "",
                          max_tlp, default_tlp, types, readers, writers, False, bool(explicit),
                          node.start_mark.line + 1, retention)


def _parse_retention(r: _Reader, node: Node | None, what: str) -> int | None:
    """Return ``retention_days`` (absent or null: keep every version), or None after reporting a bad value."""
    if node is None or r._is_null(node):
        return None
    value = r._scalar(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RETENTION_DAYS:
        shown = node.value if isinstance(node, yaml.ScalarNode) else "(not a single value)"
        r.error(node, f"bad retention_days of {what}: {shown!r} (use a whole number of days from 1 to "
                      f"{MAX_RETENTION_DAYS}, or leave it out to keep every version)")
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
        name = r.text(item, f"STIX type in {what}", max_len=250, pattern=_STIX_TYPE,
                      hint="STIX type names are 3-250 characters of a-z, 0-9 and -")
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
            r.error(item, f"bad entry {text!r} in {kind} of {what}: "
                          'use "*", "group:<id>" or "partner:<id>"')
    return tuple(policy.Grants.parse(entries).entries())


# --------------------------------------------------------------------- plan and apply


@dataclass(frozen=True)
class _Step:
    """One change and the function that makes it."""

    change: Change
    run: Callable[[], None]


def plan(session: Session, spec: SharingSpec) -> list[Change]:
    """List what ``apply`` would change; empty when the database already matches ``spec``."""
    return [step.change for step in _steps(session, spec)]


def apply(session: Session, spec: SharingSpec, *, actor: str = "cli") -> list[Change]:
    """Make the database match ``spec`` in the caller's transaction; return what changed.

    Every problem is found before the first change is made, so a ConfigError leaves
    the database untouched.
    """
    steps = _steps(session, spec)
    before = store.load_snapshot(session)
    for step in steps:
        step.run()
        # Flushed one by one: later steps look up rows (new partners, roots) by slug.
        session.flush()
        store.audit(session, actor, "sharing.apply", step.change.what, {"change": str(step.change)})
    if steps:
        store.bump_rules(session)
    session.flush()
    _publish_reference(session)
    if steps:
        _reannounce(session, before)
    return [step.change for step in steps]


def _reannounce(session: Session, before: store.Snapshot) -> None:
    """Re-date what the change made visible to partners (see ``services.reannounce``)."""
    services = importlib.import_module("hub.services")
    services.reannounce(session, before)


def _publish_reference(session: Session) -> None:
    """Republish the reference collections, once the services layer provides it."""
    try:
        # Imported late: services may itself import this module.
        services = importlib.import_module("hub.services")
    except ModuleNotFoundError as exc:
        if exc.name != "hub.services":
            raise
        return
    if hasattr(services, "publish_reference"):
        services.publish_reference(session)


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


def _column(value: Any) -> Any:
    """Convert a compared value to what its column stores."""
    if isinstance(value, TLP):
        return int(value)
    if isinstance(value, tuple):
        return ",".join(value)
    return value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, TLP):
        return _tlp_name(value)
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


def _update(what: str, row: Any, current: dict[str, Any], wanted: dict[str, Any], *, note: str = "",
            save: Callable[[dict[str, Any]], None] | None = None) -> list[_Step]:
    """Return the step that brings ``row`` from ``current`` to ``wanted``, if they differ."""
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return []

    def run() -> None:
        if save is not None:
            save(changed)
            return
        for name, value in changed.items():
            setattr(row, name, _column(value))

    return [_Step(Change("update", what, _describe(current, changed) + note), run)]


# --------------------------------------------------------------------- partners


def _partner_values(row: m.Partner) -> dict[str, Any]:
    return {"name": row.name, "country": row.country, "sector": row.sector, "kind": row.kind,
            "clearance": TLP(row.clearance), "active": row.active, "identity_id": row.identity_id}


def _partner_wanted(p: PartnerSpec, row: m.Partner | None) -> dict[str, Any]:
    values: dict[str, Any] = {"name": p.name, "country": p.country, "sector": p.sector, "kind": p.kind,
                              "clearance": p.clearance, "active": p.active}
    # A derived identity never replaces one already stored: objects' created_by_ref point at it.
    if p.identity_explicit or row is None:
        values["identity_id"] = p.identity
    return values


def _partner_summary(p: PartnerSpec) -> str:
    state = "" if p.active else ", suspended"
    return f"{p.name}, {p.country or 'no country'}, clearance {_tlp_name(p.clearance)}{state}"


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
            add = _Step(Change("add", f"partner {p.slug}", _partner_summary(p)),
                        lambda slug=p.slug, values=values: _add_partner(session, slug, values))
            steps.append(add)
        else:
            steps += _update(f"partner {p.slug}", row, _partner_values(row), values)
    listed = {p.slug for p in wanted}
    for slug, row in rows.items():
        # Never deleted (keys, objects, audit history): suspended instead.
        if slug not in listed and row.active:
            steps += _update(f"partner {slug}", row, {"active": True}, {"active": False},
                             note=" (not in the file: suspended)")
    return steps


def _add_partner(session: Session, slug: str, values: dict[str, Any]) -> None:
    columns = {name: _column(value) for name, value in values.items()}
    session.add(m.Partner(slug=slug, created_us=store.now_us(), **columns))


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
        m.Partner, m.Partner.id == m.TrustGroupMember.partner_id)
    for group_id, slug in session.execute(stmt):
        members.setdefault(group_id, []).append(slug)
    steps: list[_Step] = []
    for g in spec.groups:
        wanted = {"name": g.name, "countries": g.countries, "marking_id": group_marking_id(g.slug),
                  "members": g.members}
        row = rows.get(g.slug)
        if row is None:
            summary = (f"{g.name}; members {', '.join(g.members) or 'none'}; "
                       f"countries {', '.join(g.countries) or 'none'}")
            steps.append(_Step(Change("add", f"trust group {g.slug}", summary),
                               lambda g=g, wanted=wanted: _save_group(session, None, g.slug, wanted)))
            continue
        current = {"name": row.name, "countries": tuple(sorted(store.split_list(row.countries))),
                   "marking_id": row.marking_id, "members": tuple(sorted(members.get(row.id, [])))}
        steps += _update(f"trust group {g.slug}", row, current, wanted,
                         save=lambda _changed, row=row, g=g, w=wanted: _save_group(session, row, g.slug, w))
    listed = {g.slug for g in spec.groups}
    for slug, row in rows.items():
        if slug not in listed:
            steps.append(_Step(Change("remove", f"trust group {slug}"),
                               lambda row=row: _remove_group(session, row)))
    return steps


def _save_group(session: Session, row: m.TrustGroup | None, slug: str, wanted: dict[str, Any]) -> None:
    """Create or update a trust group and replace its explicit members."""
    if row is None:
        row = m.TrustGroup(slug=slug)
        session.add(row)
    row.name = wanted["name"]
    row.countries = _column(wanted["countries"])
    row.marking_id = wanted["marking_id"]
    session.flush()
    session.execute(delete(m.TrustGroupMember).where(m.TrustGroupMember.group_id == row.id))
    ids = session.scalars(select(m.Partner.id).where(m.Partner.slug.in_(wanted["members"]))).all()
    for partner_id in ids:
        session.execute(m.TrustGroupMember.__table__.insert().values(group_id=row.id, partner_id=partner_id))


def _remove_group(session: Session, row: m.TrustGroup) -> None:
    session.execute(delete(m.TrustGroupMember).where(m.TrustGroupMember.group_id == row.id))
    session.delete(row)


# --------------------------------------------------------------------- API roots and collections

_Key = tuple[str, str]


def _api_steps(session: Session, spec: SharingSpec) -> list[_Step]:
    """Collection removals, then API roots, then collection additions and updates."""
    roots = {r.slug: r for r in session.scalars(select(m.ApiRoot).order_by(m.ApiRoot.id))}
    root_slug = {r.id: r.slug for r in roots.values()}
    collections = session.scalars(select(m.Collection).order_by(m.Collection.id))
    rows = {(root_slug[c.api_root_id], c.alias): c for c in collections}
    wanted = {(root.slug, c.alias): c for root in spec.roots
              for c in (*root.collections, reference_collection(root.slug))}
    gone = [key for key in rows if key not in wanted]
    _check_removable(session, spec, gone, rows)
    _check_collection_ids(spec, rows, wanted)
    steps = []
    for key in gone:
        row = rows[key]
        note = "reference data" if row.is_reference else ""
        change = Change("remove", f"collection {key[0]}/{key[1]}", note)
        steps.append(_Step(change, lambda row=row: _remove_collection(session, row)))
    listed = {root.slug for root in spec.roots}
    steps += [_Step(Change("remove", f"API root {slug}"), lambda row=row: _remove_root(session, row))
              for slug, row in roots.items() if slug not in listed]
    for root in spec.roots:
        steps += _root_step(session, root, roots.get(root.slug))
    for key, c in wanted.items():
        steps += _collection_step(session, key, c, rows.get(key))
    return steps


def _root_step(session: Session, root: ApiRootSpec, row: m.ApiRoot | None) -> list[_Step]:
    wanted = {"title": root.title, "description": root.description,
              "max_content_length": root.max_content_length}
    if row is None:
        return [_Step(Change("add", f"API root {root.slug}", root.title),
                      lambda: session.add(m.ApiRoot(slug=root.slug, **wanted)))]
    current = {"title": row.title, "description": row.description,
               "max_content_length": row.max_content_length}
    return _update(f"API root {root.slug}", row, current, wanted)


def _collection_values(row: m.Collection) -> dict[str, Any]:
    def grants(text: str) -> tuple[str, ...]:
        return tuple(policy.Grants.parse(store.split_list(text)).entries())

    return {"uuid": row.uuid, "title": row.title, "description": row.description,
            "max_tlp": TLP(row.max_tlp), "default_tlp": TLP(row.default_tlp),
            "types": tuple(sorted(store.split_list(row.types))), "readers": grants(row.readers),
            "writers": grants(row.writers), "is_reference": row.is_reference,
            "retention_days": row.retention_days}


def _collection_wanted(c: CollectionSpec, row: m.Collection | None) -> dict[str, Any]:
    values: dict[str, Any] = {"title": c.title, "description": c.description, "max_tlp": c.max_tlp,
                              "default_tlp": c.default_tlp, "types": c.types, "readers": c.readers,
                              "writers": c.writers, "is_reference": c.is_reference,
                              "retention_days": c.retention_days}
    # A derived id never replaces one already stored: TAXII clients have saved it.
    if c.uuid_explicit or row is None:
        values["uuid"] = c.uuid
    return values


def _collection_summary(c: CollectionSpec) -> str:
    return (f"{c.title}; max_tlp {_tlp_name(c.max_tlp)}, default_tlp {_tlp_name(c.default_tlp)}; "
            f"types {', '.join(c.types) or 'all'}; readers {', '.join(c.readers) or 'none'}; "
            f"writers {', '.join(c.writers) or 'none'}"
            + (f"; retention {c.retention_days} days" if c.retention_days is not None else ""))


def _collection_step(session: Session, key: _Key, c: CollectionSpec, row: m.Collection | None) -> list[_Step]:
    what = f"collection {key[0]}/{key[1]}"
    values = _collection_wanted(c, row)
    if row is not None:
        return _update(what, row, _collection_values(row), values)

    def add() -> None:
        root_id = session.scalars(select(m.ApiRoot.id).where(m.ApiRoot.slug == key[0])).one()
        columns = {name: _column(value) for name, value in values.items()}
        session.add(m.Collection(api_root_id=root_id, alias=c.alias, **columns))

    return [_Step(Change("add", what, _collection_summary(c)), add)]


def _check_removable(session: Session, spec: SharingSpec, gone: list[_Key],
                     rows: dict[_Key, m.Collection]) -> None:
    """Refuse to drop a collection that holds objects (reference data is the hub's own, so it may go)."""
    full = []
    for key in gone:
        row = rows[key]
        has = session.scalar(select(exists().where(m.ObjectVersion.collection_id == row.id)))
        if has and not row.is_reference:
            full.append(f"{key[0]}/{key[1]}")
    if full:
        raise ConfigError(_located(spec, 0, f"collection{'s' if len(full) > 1 else ''} {', '.join(full)} "
                                            "not in the file but holding objects: add back to the file, or "
                                            "delete the objects first"))


def _check_collection_ids(spec: SharingSpec, rows: dict[_Key, m.Collection],
                          wanted: dict[_Key, CollectionSpec]) -> None:
    """Refuse a file that would give two collections the same TAXII id."""
    owner: dict[str, _Key] = {}
    for key, c in wanted.items():
        row = rows.get(key)
        final = c.uuid if c.uuid_explicit or row is None else row.uuid
        if final in owner:
            other = owner[final]
            message = (f"collection id {final} of {key[0]}/{key[1]} already belongs "
                       f"to collection {other[0]}/{other[1]}")
            raise ConfigError(_located(spec, c.line, message))
        owner[final] = key


def _remove_collection(session: Session, row: m.Collection) -> None:
    # Only reference collections reach here with objects: the hub regenerates those.
    session.execute(delete(m.ObjectVersion).where(m.ObjectVersion.collection_id == row.id))
    session.execute(delete(m.Status).where(m.Status.collection_id == row.id))
    session.delete(row)


def _remove_root(session: Session, row: m.ApiRoot) -> None:
    session.execute(delete(m.Status).where(m.Status.api_root_id == row.id))
    session.delete(row)


# --------------------------------------------------------------------- export

_EXPORT_HEADER = """\
# cti-hub sharing configuration, exported from the database.
# Format and every key: see config/sharing.yaml in the cti-hub sources.
# Apply with `cti-hub sharing apply FILE` (`--dry-run` to see the changes first).
"""

_SECTION_COMMENTS = {
    "hub:": "# The hub itself: its display name and operator contact.",
    "partners:": "# Partner organisations (the hub's own partner row is implicit and not listed).",
    "trust_groups:": "# Trust groups: explicit members plus every partner of the listed countries.",
    "api_roots:": (
        "# API roots and their collections (each root's read-only `reference` collection is implicit)."
    ),
}


def export(session: Session) -> str:
    """Return the database's sharing configuration as YAML in the ``load`` format."""
    state = session.get(m.HubState, 1)
    if state is None:
        raise ConfigError("database not initialised: run `cti-hub db upgrade`")
    data = {
        "hub": {"name": state.name or "cti-hub", "contact": state.contact},
        "partners": [_export_partner(p) for p in session.scalars(select(m.Partner).order_by(m.Partner.id))
                     if p.slug != HUB_SLUG],
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
    out["clearance"] = _tlp_name(TLP(p.clearance))
    if not p.active:
        out["active"] = False
    if p.identity_id != partner_identity(p.slug):
        out["identity"] = p.identity_id
    return out


def _export_groups(session: Session) -> list[dict[str, Any]]:
    members: dict[int, list[str]] = {}
    stmt = select(m.TrustGroupMember.group_id, m.Partner.slug).join(
        m.Partner, m.Partner.id == m.TrustGroupMember.partner_id)
    for group_id, slug in session.execute(stmt):
        members.setdefault(group_id, []).append(slug)
    return [{"id": g.slug, "name": g.name, "members": sorted(members.get(g.id, [])),
             "countries": sorted(store.split_list(g.countries))}
            for g in session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.id))]


def _export_roots(session: Session) -> list[dict[str, Any]]:
    out = []
    for root in session.scalars(select(m.ApiRoot).order_by(m.ApiRoot.id)):
        item: dict[str, Any] = {"id": root.slug, "title": root.title}
        if root.description:
            item["description"] = root.description
        item["max_content_length"] = root.max_content_length
        stmt = select(m.Collection).where(m.Collection.api_root_id == root.id,
                                          m.Collection.is_reference.is_(False)).order_by(m.Collection.id)
        item["collections"] = [_export_collection(root.slug, c) for c in session.scalars(stmt)]
        out.append(item)
    return out


def _export_collection(root: str, c: m.Collection) -> dict[str, Any]:
    values = _collection_values(c)
    out: dict[str, Any] = {}
    if c.uuid != collection_uuid(root, c.alias):
        out["id"] = c.uuid
    out["alias"] = c.alias
    out["title"] = c.title
    if c.description:
        out["description"] = c.description
    out["max_tlp"] = _tlp_name(values["max_tlp"])
    out["default_tlp"] = _tlp_name(values["default_tlp"])
    out["types"] = list(values["types"])
    out["readers"] = list(values["readers"])
    out["writers"] = list(values["writers"])
    if c.retention_days is not None:
        out["retention_days"] = c.retention_days
    return out
