"""Database tables: the hub's whole state, as SQLAlchemy 2.x declarative models.

Timestamps the TAXII layer compares (``date_added``, object versions, expiry) are
integers of microseconds since the Unix epoch: exact, portable across SQLite and
PostgreSQL, and cheap to index and compare. The feedback loop's tables are in ``hub.models.feedback``,
the security keys' in ``hub.models.webauthn`` (both re-exported here).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import expression

from hub.models.base import Base as Base
from hub.models.base import split_list as split_list
from hub.models.feedback import FalsePositiveFlag as FalsePositiveFlag
from hub.models.feedback import Feedback as Feedback
from hub.models.webauthn import AdminWebauthnChallenge as AdminWebauthnChallenge
from hub.models.webauthn import AdminWebauthnCredential as AdminWebauthnCredential


class HubState(Base):
    """One row: the hub's clock for ``date_added`` and the version of the sharing rules."""

    __tablename__ = "hub_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_us: Mapped[int] = mapped_column(BigInteger, default=0)
    rules_version: Mapped[int] = mapped_column(BigInteger, default=1)
    name: Mapped[str] = mapped_column(String(200), default="cti-hub")
    contact: Mapped[str] = mapped_column(String(200), default="")
    identity_id: Mapped[str] = mapped_column(String(80), default="")


class Partner(Base):
    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2), default="")
    sector: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16), default="cert")
    clearance: Mapped[int] = mapped_column(SmallInteger, default=4)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    identity_id: Mapped[str] = mapped_column(String(80), unique=True)
    created_us: Mapped[int] = mapped_column(BigInteger, default=0)
    # ACS 3.0 attributes (hub.acs): organisation token, shareability and entity categories (comma lists).
    acs_organization: Mapped[str] = mapped_column(String(100), default="", server_default="")
    acs_shareability: Mapped[str] = mapped_column(String(100), default="", server_default="")
    acs_entity: Mapped[str] = mapped_column(String(100), default="", server_default="")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    cidrs: Mapped[str] = mapped_column(Text, default="")
    created_us: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A key bound to a client certificate works only over a connection presenting it (hub.auth).
    cert_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    cert_subject: Mapped[str] = mapped_column(String(500), default="", server_default="")


class TrustGroup(Base):
    __tablename__ = "trust_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    countries: Mapped[str] = mapped_column(Text, default="")
    marking_id: Mapped[str] = mapped_column(String(80), default="")


class TrustGroupMember(Base):
    __tablename__ = "trust_group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("trust_groups.id", ondelete="CASCADE"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True)


class ApiRoot(Base):
    __tablename__ = "api_roots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    max_content_length: Mapped[int] = mapped_column(BigInteger, default=10 * 1024 * 1024)


class Collection(Base):
    """A TAXII collection; ``readers``/``writers`` hold grant entries ("*", "group:x", "partner:y")."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("api_root_id", "alias"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    api_root_id: Mapped[int] = mapped_column(ForeignKey("api_roots.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    max_tlp: Mapped[int] = mapped_column(SmallInteger, default=2)
    default_tlp: Mapped[int] = mapped_column(SmallInteger, default=2)
    types: Mapped[str] = mapped_column(Text, default="")
    readers: Mapped[str] = mapped_column(Text, default="")
    writers: Mapped[str] = mapped_column(Text, default="")
    is_reference: Mapped[bool] = mapped_column(Boolean, default=False)
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: keep every version
    # The widest networks ip.txt lists (hub.formats.BlocklistLimits): a /0 would block the internet.
    blocklist_ipv4_prefix: Mapped[int] = mapped_column(SmallInteger, default=24, server_default="24")
    blocklist_ipv6_prefix: Mapped[int] = mapped_column(SmallInteger, default=48, server_default="48")
    # Whether the blocklists list values on a warninglist (hub.warninglists): private addresses, top sites...
    blocklist_allow_warninglisted: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=expression.false()
    )
    # The API root's feedback collection (hub.feedback): sightings and false-positive reports go to the
    # reporter and to the originator of the object they are about, and to no one else.
    is_feedback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=expression.false())
    # How many distinct partners' false-positive reports flag an indicator to its originator (0: never), and
    # whether a flagged indicator also leaves this collection's blocklists.
    false_positive_threshold: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    false_positive_withdraw: Mapped[bool] = mapped_column(Boolean, default=False, server_default=expression.false())


class Marking(Base):
    """Every marking-definition the hub understands: TLP, statement and sharing markings."""

    __tablename__ = "markings"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    tlp: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    share_partners: Mapped[str] = mapped_column(Text, default="")
    share_groups: Mapped[str] = mapped_column(Text, default="")
    share_countries: Mapped[str] = mapped_column(Text, default="")
    exclude_partners: Mapped[str] = mapped_column(Text, default="")
    no_federation: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str] = mapped_column(Text)
    originator_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), nullable=True)


class RestrictionSet(Base):
    """An interned set of sharing markings: the unit the SQL read filter admits or not."""

    __tablename__ = "restriction_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marking_ids: Mapped[str] = mapped_column(Text, unique=True)
    # The partner whose post created the set: what its quota counts (max_restriction_sets_per_partner).
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), nullable=True)


class RestrictionSetMarking(Base):
    """One sharing marking of a restriction set: the read filter joins these instead of listing admitted sets."""

    __tablename__ = "restriction_set_markings"
    restriction_set_id: Mapped[int] = mapped_column(ForeignKey("restriction_sets.id"), primary_key=True)
    marking_id: Mapped[str] = mapped_column(String(80), primary_key=True)


class ObjectVersion(Base):
    """One version of one STIX object in one collection, with the columns filters and rules need."""

    __tablename__ = "object_versions"
    __table_args__ = (
        # Unique per collection, and the only index ordered by date_added (see migration 0004).
        Index("ix_versions_collection_added", "collection_id", "date_added", unique=True),
        Index("ix_versions_collection_object", "collection_id", "stix_id", "version_us"),
        # Ids differing only in case are one id to the write rules (``hub.ids.stix_key``).
        Index("ix_versions_stix_key", func.lower(text("stix_id"))),
        # The panel's lists by type, newest stored first (migration 0023).
        Index("ix_versions_type", "type", "pk"),
    )
    pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    stix_id: Mapped[str] = mapped_column(String(100), index=True)
    type: Mapped[str] = mapped_column(String(250))
    version: Mapped[str] = mapped_column(String(40))
    version_us: Mapped[int] = mapped_column(BigInteger)
    spec_version: Mapped[str] = mapped_column(String(8), default="2.1")
    date_added: Mapped[int] = mapped_column(BigInteger)
    originator_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    tlp: Mapped[int] = mapped_column(SmallInteger)
    restriction_set_id: Mapped[int | None] = mapped_column(ForeignKey("restriction_sets.id"), nullable=True)
    unknown_markings: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str] = mapped_column(Text)
    # True when a later version of the same object is stored in the collection (``store.writes.refresh_newer``);
    # a version without one is the latest for every partner who sees it, so reads skip the search.
    newer_exists: Mapped[bool] = mapped_column(Boolean, server_default=expression.false())
    # A copy another partner posted under an id it does not own: visible to that poster alone.
    quarantined: Mapped[bool] = mapped_column(Boolean, server_default=expression.false())


class ObjectValue(Base):
    """A term the panel's search finds a version by: its name (from each word on), an alias, an observable.

    Filled at ingest from :func:`hub.stix.values.search_terms`; searched by prefix on ``term``, whose
    binary order (the "C" collation on PostgreSQL) keeps every term with one prefix in one index range.
    A version's terms are deleted with it: by the foreign key on SQLite, by a trigger per statement on
    PostgreSQL, where a key would be checked for every term row written (migration ``0026_terms_trigger``).
    """

    __tablename__ = "object_values"
    # Clustered on (version_pk, term) on SQLite: each envelope's rows append, and a deleted version's go at once.
    __table_args__ = (Index("ix_object_values_term", "term", "version_pk"), {"sqlite_with_rowid": False})
    version_pk: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("object_versions.pk", ondelete="CASCADE"),
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(String(100))  # what gave the term: "name", "domain" or the observable path
    term: Mapped[str] = mapped_column(
        String(200).with_variant(String(200, collation="C"), "postgresql"), primary_key=True
    )


class ObjectOrigin(Base):
    """Who first published an object id (lower-cased): only it may publish under the id, even after deleting it."""

    __tablename__ = "object_origins"
    stix_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    originator_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    created_us: Mapped[int] = mapped_column(BigInteger)


class Status(Base):
    """A TAXII status resource: durable, written in the same transaction as the objects."""

    __tablename__ = "statuses"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    api_root_id: Mapped[int] = mapped_column(ForeignKey("api_roots.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    request_us: Mapped[int] = mapped_column(BigInteger)
    total_count: Mapped[int] = mapped_column(Integer)
    success_count: Mapped[int] = mapped_column(Integer)
    failure_count: Mapped[int] = mapped_column(Integer)
    pending_count: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[str] = mapped_column(Text, default="[]")
    failures: Mapped[str] = mapped_column(Text, default="[]")


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at_us: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")


class LoginFailure(Base):
    """Failed authentications per source address, for rate limiting."""

    __tablename__ = "login_failures"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_us: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer, default=0)


class AdminUser(Base):
    __tablename__ = "admin_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_us: Mapped[int] = mapped_column(BigInteger, default=0)


class AdminTotp(Base):
    """A panel account's TOTP authenticator (RFC 6238): its secret, sealed under the hub secret, and the
    newest time step a code was accepted for, so that no code is accepted twice."""

    __tablename__ = "admin_totp"
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True)
    sealed_secret: Mapped[str] = mapped_column(String(300))
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    enrolled_us: Mapped[int] = mapped_column(BigInteger, default=0)


class AdminRecoveryCode(Base):
    """A one-time recovery code of a panel account, kept as a salted SHA-256; ``used_us`` once spent."""

    __tablename__ = "admin_recovery_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_us: Mapped[int] = mapped_column(BigInteger, default=0)
    used_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuditHead(Base):
    """One row: the newest audit event and its hash, so deleting the tail of the chain shows too."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64), default="")


class Delivery(Base):
    """One served TAXII page: who, through which key, what range of ``date_added``, under which rules.

    Versions are immutable, so (collection, the partner's view at ``rules_version``, the filters,
    ``first_added``..``last_added``) identifies exactly the versions that went out. Append-only.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_collection_range", "collection_id", "first_added", "last_added"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at_us: Mapped[int] = mapped_column(BigInteger, index=True)
    partner_id: Mapped[int] = mapped_column(Integer, index=True)
    partner_slug: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(16))
    collection_id: Mapped[int] = mapped_column(Integer)
    filters: Mapped[str] = mapped_column(Text, default="{}")
    rules_version: Mapped[int] = mapped_column(BigInteger)
    first_added: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_added: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class VersionRedate(Base):
    """A ``date_added`` a version held until a rule change re-dated it; deliveries before then saw it there."""

    __tablename__ = "version_redates"
    version_pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    date_added: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    replaced_us: Mapped[int] = mapped_column(BigInteger)


class DeliveryView(Base):
    """A partner's compiled read filter on a collection at one ``rules_version``, as the ledger saw it."""

    __tablename__ = "delivery_views"
    partner_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules_version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    read_filter: Mapped[str] = mapped_column(Text)


class FeedSource(Base):
    """A remote TAXII collection the hub imports from: target, credentials' env names and the cursor."""

    __tablename__ = "feed_sources"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    partner_slug: Mapped[str] = mapped_column(String(64))
    collection_uuid: Mapped[str] = mapped_column(String(36))
    settings: Mapped[str] = mapped_column(Text, default="{}")
    cursor: Mapped[str] = mapped_column(String(40), default="")
    last_run_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_summary: Mapped[str] = mapped_column(Text, default="")


class ArchivedVersion(Base):
    """A superseded object version moved out of ``object_versions`` by the retention run.

    The columns and values of the version as it was stored (its ``pk`` included), plus when it
    was archived. History, like the ledger: no foreign keys, nothing serves it over TAXII; the
    delivery ledger reads it to answer for versions that were delivered and later archived.
    """

    __tablename__ = "archived_versions"
    __table_args__ = (Index("ix_archived_object", "stix_id", "collection_id", "version_us"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The version's ``pk`` in object_versions, which per-version records (version_redates) name.
    pk: Mapped[int] = mapped_column(BigInteger)
    collection_id: Mapped[int] = mapped_column(Integer)
    stix_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(250))
    version: Mapped[str] = mapped_column(String(40))
    version_us: Mapped[int] = mapped_column(BigInteger)
    spec_version: Mapped[str] = mapped_column(String(8), default="2.1")
    date_added: Mapped[int] = mapped_column(BigInteger)
    originator_id: Mapped[int] = mapped_column(Integer)
    tlp: Mapped[int] = mapped_column(SmallInteger)
    restriction_set_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    unknown_markings: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str] = mapped_column(Text)
    archived_us: Mapped[int] = mapped_column(BigInteger, index=True)
    quarantined: Mapped[bool] = mapped_column(Boolean, server_default=expression.false())


class Withdrawal(Base):
    """An object that left one partner's view of one collection: rules narrowed, deleted, or recalled.

    ``position`` comes from the hub clock, like ``date_added``, so the feeds' ``since`` cursor covers
    withdrawals too. ``summary`` keeps what that partner already had of the object (indicator name and
    pattern of the newest version it could see), so its blocklists can still name the removed value.
    """

    __tablename__ = "withdrawals"
    __table_args__ = (Index("ix_withdrawals_partner_position", "partner_id", "collection_id", "position"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, unique=True)
    at_us: Mapped[int] = mapped_column(BigInteger)
    partner_id: Mapped[int] = mapped_column(Integer)
    collection_id: Mapped[int] = mapped_column(Integer)
    stix_id: Mapped[str] = mapped_column(String(300), index=True)
    object_type: Mapped[str] = mapped_column(String(250))
    reason: Mapped[str] = mapped_column(String(16))
    tlp: Mapped[int] = mapped_column(SmallInteger)
    originator_id: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text, default="{}")
    recall_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    served_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Recall(Base):
    """An administrator's recall of an object from every partner that received it."""

    __tablename__ = "recalls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stix_id: Mapped[str] = mapped_column(String(300), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    at_us: Mapped[int] = mapped_column(BigInteger)


class RecallNotice(Base):
    """One recipient of a recall: when it was notified, when its feed first listed the withdrawal."""

    __tablename__ = "recall_notices"
    recall_id: Mapped[int] = mapped_column(Integer, ForeignKey("recalls.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_slug: Mapped[str] = mapped_column(String(64))
    notified_us: Mapped[int] = mapped_column(BigInteger)
    served_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class FeedLease(Base):
    """Who may run a scheduled job (the sync of remote sources) and until when; one row per job.

    ``next_run_us`` is when the job is due again, so N workers on M hosts run it once per interval.
    """

    __tablename__ = "feed_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    expires_us: Mapped[int] = mapped_column(BigInteger, default=0)
    next_run_us: Mapped[int] = mapped_column(BigInteger, default=0)
