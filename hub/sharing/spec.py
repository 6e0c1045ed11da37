"""What a sharing configuration says: partners, trust groups, API roots and collections as data.

Ids the file does not spell out are derived with uuid5 on ``hub.ids.SHARING_NAMESPACE``, so the
same file gives the same STIX identity ids, collection ids and sharing-marking
ids on every hub. ``hub.ids.SHARING_NAMESPACE`` must never change: it would change every
derived id and break every client that stored one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from hub import policy
from hub.formats import BlocklistLimits
from hub.ids import SHARING_NAMESPACE
from hub.policy import TLP

HUB_SLUG = "hub"
REFERENCE_ALIAS = "reference"
REFERENCE_TITLE = "Reference data"
REFERENCE_DESCRIPTION = (
    "Read-only: the hub's and the partners' identities, the TLP marking definitions, "
    "the sharing-restriction extension and one ready-made sharing marking per trust group."
)
# Path segments the hub's own routes use: an API root of that name would shadow them.
RESERVED_ROOTS = frozenset({"taxii2", "admin", "feeds", "static", "healthz", "readyz", "metrics", "openapi.json"})
KINDS = ("cert", "government", "private", "hub")
DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024


def partner_identity(slug: str) -> str:
    """Return the STIX identity id a partner gets when the file names none."""
    return f"identity--{uuid.uuid5(SHARING_NAMESPACE, 'partner:' + slug)}"


def hub_identity() -> str:
    """Return the STIX identity id of the hub itself."""
    return f"identity--{uuid.uuid5(SHARING_NAMESPACE, 'hub')}"


def group_marking_id(slug: str) -> str:
    """Return the id of a trust group's ready-made sharing marking."""
    return f"marking-definition--{uuid.uuid5(SHARING_NAMESPACE, 'group:' + slug)}"


def collection_uuid(root: str, alias: str) -> str:
    """Return the TAXII collection id a collection gets when the file names none."""
    return str(uuid.uuid5(SHARING_NAMESPACE, f"{root}/{alias}"))


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
    # ACS 3.0 attributes (hub.acs): organisation token and shareability/entity categories.
    acs_organization: str = ""
    acs_shareability: tuple[str, ...] = ()
    acs_entity: tuple[str, ...] = ()


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
    # The widest networks the collection's ip.txt lists (hub.formats.BlocklistLimits).
    blocklist_ipv4_prefix: int = BlocklistLimits.ipv4_prefix
    blocklist_ipv6_prefix: int = BlocklistLimits.ipv6_prefix
    # Whether the blocklists list warninglisted values (private addresses, top sites: hub.warninglists).
    blocklist_allow_warninglisted: bool = BlocklistLimits.allow_warninglisted
    # The API root's feedback collection (hub.feedback); at most one per API root.
    feedback: bool = False
    # Distinct partners' false-positive reports that flag an indicator (0: never), and whether that withdraws it.
    false_positive_threshold: int = 0
    false_positive_withdraw: bool = False


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


def tlp_name(level: TLP) -> str:
    """Return a TLP level as sharing.yaml spells it (``AMBER+STRICT``)."""
    return level.name.replace("_", "+")


def reference_collection(root: str) -> CollectionSpec:
    """Return the reference collection every API root carries: read by all, written only by the hub itself."""
    return CollectionSpec(
        REFERENCE_ALIAS,
        collection_uuid(root, REFERENCE_ALIAS),
        REFERENCE_TITLE,
        REFERENCE_DESCRIPTION,
        TLP.CLEAR,
        TLP.CLEAR,
        (),
        (policy.EVERYONE,),
        (f"partner:{HUB_SLUG}",),
        is_reference=True,
    )
