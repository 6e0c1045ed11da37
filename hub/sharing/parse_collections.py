"""The ``api_roots`` section of sharing.yaml and the collections in each API root."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from yaml import Node

from hub import formats, policy
from hub.sharing.spec import (
    DEFAULT_MAX_CONTENT_LENGTH,
    REFERENCE_ALIAS,
    RESERVED_ROOTS,
    ApiRootSpec,
    CollectionSpec,
    collection_uuid,
    tlp_name,
)
from hub.sharing.yaml_reader import Reader, peek, unique

_ROOT = re.compile(r"[a-z0-9_-]{1,64}")
_ALIAS = re.compile(r"[a-z0-9_-]{1,64}")
_STIX_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]")


@dataclass
class _RootContext:
    """What collection parsing needs to know about its API root and the rest of the file."""

    root: str
    partners: set[str]
    groups: set[str]
    uuids: dict[str, int]


def parse_roots(r: Reader, nodes: list[Node], partners: set[str], groups: set[str]) -> list[ApiRootSpec]:
    """Read the ``api_roots`` items and their collections; grants may name only ``partners`` and ``groups``."""
    out: list[ApiRootSpec] = []
    seen: dict[str, int] = {}
    uuids: dict[str, int] = {}
    for node in nodes:
        what = f"API root {peek(node, 'id') or '(no id)'}"
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
        unique(r, node, "API root id", slug, seen)
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


def _parse_collections(r: Reader, nodes: list[Node], ctx: _RootContext) -> list[CollectionSpec]:
    out: list[CollectionSpec] = []
    aliases: dict[str, int] = {}
    reference = collection_uuid(ctx.root, REFERENCE_ALIAS)
    for node in nodes:
        spec = _parse_collection(r, node, ctx)
        if spec is None:
            continue
        if spec.alias in aliases:
            unique(r, node, "collection alias", spec.alias, aliases, f" in API root {ctx.root}")
            continue
        aliases[spec.alias] = node.start_mark.line + 1
        if spec.feedback and any(c.feedback for c in out):
            r.error(node, f"API root {ctx.root} already has a feedback collection: an API root has at most one")
        if spec.uuid == reference:
            r.error(node, f"collection id {spec.uuid} is the id of the reference collection of {ctx.root}")
        unique(r, node, "collection id", spec.uuid, ctx.uuids)
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
    "feedback",
    "false_positive_threshold",
    "false_positive_withdraw",
)
MAX_RETENTION_DAYS = 36_500
MAX_FALSE_POSITIVE_THRESHOLD = 1000


def _parse_collection(r: Reader, node: Node, ctx: _RootContext) -> CollectionSpec | None:
    what = f"collection {ctx.root}/{peek(node, 'alias') or '(no alias)'}"
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
    feedback = {k: r.flag(keys[k], f"{k} of {what}") for k in ("feedback", "false_positive_withdraw") if k in keys}
    threshold = None
    if "false_positive_threshold" in keys:
        threshold = r.bounded(
            keys["false_positive_threshold"],
            f"false_positive_threshold of {what}",
            0,
            MAX_FALSE_POSITIVE_THRESHOLD,
            "use how many distinct partners' false-positive reports flag an indicator, from {low} (never) to {high}",
        )
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
        bool(feedback.get("feedback")),
        threshold or 0,
        bool(feedback.get("false_positive_withdraw")),
    )


def _parse_retention(r: Reader, node: Node | None, what: str) -> int | None:
    """Return ``retention_days`` (absent or null: keep every version), or None after reporting a bad value."""
    if node is None or r.is_null(node):
        return None
    return r.bounded(
        node,
        f"retention_days of {what}",
        1,
        MAX_RETENTION_DAYS,
        "use a whole number of days from {low} to {high}, or leave it out to keep every version",
    )


def _parse_prefix(r: Reader, keys: dict[str, Node], key: str, bounds: tuple[int, int], what: str) -> int | None:
    """Return a blocklist prefix limit (absent: None, the default), or None after reporting a bad value."""
    node = keys.get(key)
    if node is None:
        return None
    return r.bounded(
        node,
        f"{key} of {what}",
        *bounds,
        "use a prefix length from {low} to {high}; a wider limit would let one indicator block a large part of "
        "the internet",
    )


def _parse_uuid(r: Reader, node: Node | None, what: str) -> str:
    text = r.text(node, f"id of {what}", max_len=64, default="")
    if not text:
        return ""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        r.error(node, f"bad id of {what}: {text!r} (TAXII collection ids are UUIDs)")  # type: ignore[arg-type]
        return ""


def _parse_types(r: Reader, node: Node | None, what: str) -> tuple[str, ...]:
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


def _parse_grants(r: Reader, node: Node | None, kind: str, what: str, ctx: _RootContext) -> tuple[str, ...]:
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
