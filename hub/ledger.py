"""The delivery ledger: every TAXII page and feed response served, and "who received this object (version)".

A page is recorded as one row: partner, key, endpoint, collection, the filters, the rules
version in force and the ``date_added`` range of the rows it held. Versions never change once
stored, so that row identifies exactly what went out: the versions of the collection whose
``date_added`` falls in the range, that match the filters and that the partner's view admitted.
The view itself (the compiled read filter) is saved once per (partner, collection, rules
version), so the answer stays exact after the sharing rules change: it is re-derived with
``policy.filter_admits`` under the rules that were in force at the time, not today's.
A feed response (``/feeds``) is one row too, written before its body streams: the endpoint is the
feed format and the range is what the response covers, up to the clock value it stops at.
"""

from __future__ import annotations

import atexit
import contextlib
import weakref
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import formats, ops, policy, stix
from hub import models as m
from hub.auth import Principal
from hub.errors import NotFound
from hub.runtime import Hub
from hub.store import archive, clock, deliveries, feedback, reads, snapshots, writes

EMPTY_FLUSH_US = 5_000_000  # empty polls (they delivered nothing) are written in one batch this often


def record_page(
    hub: Hub,
    principal: Principal,
    snapshot: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    query: reads.VersionQuery,
    endpoint: str,
    rows: list,
) -> None:
    """Record one page just computed.

    A page that delivered objects is written at once (one short transaction that does not wait for
    the disk); empty polls, the bulk of SIEM traffic, are batched and written every few seconds, so a
    head poll costs no write at all.
    """
    kind = endpoint.partition(":")[0]
    span = (rows[0].date_added, rows[-1].date_added, len(rows)) if rows else (None, None, 0)
    _record(hub, principal, snapshot, collection, query.read, kind, _dump_query(query), span)
    if rows and kind in ("objects", "object"):
        ops.DELIVERED.labels(principal.slug).inc(len(rows))


def record_feed(
    hub: Hub,
    principal: Principal,
    snapshot: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    query: reads.VersionQuery,
    fmt: str,
    span: tuple[int | None, int | None, int],
    include: str = "",
) -> None:
    """Record one feed response before its body streams: ``span`` is (first, last, count) of what it covers.

    The endpoint is the feed format; the filters are the query's (``after`` is the ``since`` cursor),
    plus ``include`` when given, and for a blocklist the collection's limits it was judged by.
    """
    extra: dict[str, Any] = {"include": include} if include else {}
    if fmt in formats.BLOCKLISTS:
        limits = collection.blocklist
        extra["blocklist"] = [limits.ipv4_prefix, limits.ipv6_prefix, limits.allow_warninglisted]
    filters = _dump_query(query, extra)
    _record(hub, principal, snapshot, collection, query.read, fmt, filters, span)


def _record(
    hub: Hub,
    principal: Principal,
    snapshot: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    read: policy.ReadFilter,
    endpoint: str,
    filters: str,
    span: tuple[int | None, int | None, int],
) -> None:
    first, last, count = span
    row = {
        "at_us": clock.now_us(),
        "partner_id": principal.partner_pk,
        "partner_slug": principal.slug,
        "key_id": principal.key_id,
        "endpoint": endpoint,
        "collection_id": collection.pk,
        "filters": filters,
        "rules_version": snapshot.rules_version,
        "first_added": first if count else None,
        "last_added": last if count else None,
        "count": count,
    }
    if not count:
        _hold_empty(hub, row)
        return
    key = (principal.partner_pk, collection.pk, snapshot.rules_version)
    saved = hub.ledger_buffer.saved_views
    view = None
    if key not in saved:
        view = {
            "partner_id": key[0],
            "collection_id": key[1],
            "rules_version": key[2],
            "read_filter": _dump_filter(read),
        }
    deliveries.append_deliveries(hub.engine, [row], view)
    saved.add(key)
    flush_empty(hub, force=False)


def _hold_empty(hub: Hub, row: dict) -> None:
    pending = hub.ledger_buffer
    with pending.lock:
        if not pending.flushed_at_exit:
            atexit.register(_flush_at_exit, weakref.ref(hub))
            pending.flushed_at_exit = True
        if not pending.empty:
            pending.since = row["at_us"]
        key = (row["partner_id"], row["key_id"], row["collection_id"], row["endpoint"], row["filters"])
        pending.empty[key] = row  # the latest poll of each kind stands for the window
    flush_empty(hub, force=False)


def _flush_at_exit(ref: weakref.ref) -> None:
    """Write a worker's last batched polls when it stops; best effort, the process is ending."""
    hub = ref()
    if hub is not None:
        with contextlib.suppress(Exception):
            flush_empty(hub)


def flush_empty(hub: Hub, *, force: bool = True) -> int:
    """Write the batched empty polls (all of them when ``force``, else only once the window has passed)."""
    pending = hub.ledger_buffer
    with pending.lock:
        if not pending.empty or (not force and clock.now_us() - pending.since < EMPTY_FLUSH_US):
            return 0
        rows, pending.empty = list(pending.empty.values()), {}
    deliveries.append_deliveries(hub.engine, rows)
    return len(rows)


def _dump_filter(f: policy.ReadFilter) -> str:
    return orjson.dumps(
        {
            "readable": f.readable,
            "originator": f.originator,
            "max_tlp": int(f.max_tlp),
            "types": sorted(f.types),
            "admitted_sets": sorted(f.admitted_sets),
            "red_sets": sorted(f.red_sets),
            "shown_markings": None if f.shown_markings is None else sorted(f.shown_markings),
            **({"feedback": True} if f.feedback else {}),
        }
    ).decode()


def _load_filter(text: str) -> policy.ReadFilter:
    d = orjson.loads(text)
    return policy.ReadFilter(
        readable=d["readable"],
        originator=d["originator"],
        max_tlp=policy.TLP(d["max_tlp"]),
        types=frozenset(d["types"]),
        admitted_sets=frozenset(d["admitted_sets"]),
        red_sets=frozenset(d["red_sets"]),
        # Views saved before sharing-marking definitions were withheld released them all.
        shown_markings=None if d.get("shown_markings") is None else frozenset(d["shown_markings"]),
        feedback=bool(d.get("feedback", False)),
    )


def _dump_query(q: reads.VersionQuery, extra: dict[str, Any] | None = None) -> str:
    out: dict[str, Any] = {"versions": list(q.versions), **(extra or {})}
    for name in ("ids", "types", "spec_versions"):
        if getattr(q, name):
            out[name] = list(getattr(q, name))
    if q.added_after is not None:
        out["added_after"] = q.added_after
    if q.after is not None:
        out["after"] = q.after
    return orjson.dumps(out).decode()


# --------------------------------------------------------------------- who received


@dataclass(frozen=True)
class Receipt:
    """One partner receiving one object version through one page."""

    partner: str
    key_id: str
    at_us: int
    endpoint: str
    collection: str
    version: str
    rules_version: int
    collection_pk: int = 0


def who_received(
    session: Session, snapshot: snapshots.Snapshot, stix_id: str, version: str | None = None
) -> list[Receipt]:
    """Return every delivery of ``stix_id`` (or of one version of it), oldest first.

    Raises NotFound when the hub holds no such object (version).
    """
    # Archived versions (hub.retention) were delivered like any other: they answer too.
    every: list[m.ObjectVersion | m.ArchivedVersion] = [
        *writes.versions_by_id(session, stix_id),
        *archive.archived_by_id(session, stix_id),
    ]
    versions = every
    if version is not None:
        try:
            wanted = stix.parse_filter_timestamp(version)
        except ValueError:
            raise NotFound(f"version {version!r} is not a timestamp") from None
        versions = [v for v in versions if v.version_us == wanted]
    if not versions:
        raise NotFound(f"the hub holds no {stix_id}" + (f" version {version}" if version else ""))
    by_object: dict[int, list] = {}
    for v in every:
        by_object.setdefault(v.collection_id, []).append(v)
    # A rule change may have re-dated a version: pages served before then found it at its former date_added.
    former = deliveries.former_dates(session, [v.pk for v in every])
    first_added = {v.pk: min([v.date_added, *(at for at, _ in former.get(v.pk, ()))]) for v in every}
    alias = {c.pk: c.alias for c in snapshot.collections.values()}
    # Feedback goes to the originator of what it is about (policy step 9); indicators flagged as false
    # positives were left out of the blocklists while their flag withdrew them.
    receivers = {
        pk: snapshot.partner_rows[o].slug for pk, o in feedback.receivers(session, [v.pk for v in every]).items()
    }
    context = _Context(receivers, feedback.flags_of(session, stix_id))
    filters: dict[tuple[int, int, int], policy.ReadFilter | None] = {}
    out = []
    for v in versions:
        covering = deliveries.deliveries_covering(session, v.collection_id, v.date_added)
        for at, replaced_us in former.get(v.pk, ()):
            covering += deliveries.deliveries_covering(session, v.collection_id, at, before_us=replaced_us)
        for d in covering:
            key = (d.partner_id, d.collection_id, d.rules_version)
            if key not in filters:
                saved = deliveries.delivery_view(session, *key)
                filters[key] = _load_filter(saved) if saved is not None else None
            view = filters[key]
            if view is None or not _delivered(snapshot, view, d, v, by_object[v.collection_id], first_added, context):
                continue
            out.append(
                Receipt(
                    d.partner_slug,
                    d.key_id,
                    d.at_us,
                    d.endpoint,
                    alias.get(d.collection_id, "?"),
                    v.version,
                    d.rules_version,
                    d.collection_id,
                )
            )
    return sorted(out, key=lambda r: (r.at_us, r.partner))


@dataclass(frozen=True)
class _Context:
    """What judging deliveries of one object needs beyond its versions: who its feedback goes to, its flags."""

    receivers: dict[int, str]
    flags: list


def _admits(snapshot: snapshots.Snapshot, view: policy.ReadFilter, v: Any, context: _Context) -> bool:
    originator = snapshot.partner_rows.get(v.originator_id)
    facts = policy.ObjectFacts(
        type=v.type,
        tlp=policy.TLP(v.tlp),
        originator=originator.slug if originator is not None else "",
        unknown_markings=("?",) if v.unknown_markings else (),
        quarantined=bool(getattr(v, "quarantined", False)),
        defines=snapshot.definitions.get(v.stix_id),
        feedback_for=context.receivers.get(v.pk),
    )
    return policy.filter_admits(view, facts, v.restriction_set_id)


def _delivered(
    snapshot: snapshots.Snapshot,
    view: policy.ReadFilter,
    d: Any,
    v: Any,
    siblings: list,
    first_added: dict[int, int],
    context: _Context,
) -> bool:
    """Tell whether delivery ``d`` (whose range covers ``v``) held ``v``: the view and the filters admit it."""
    if not _admits(snapshot, view, v, context):
        return False
    f = orjson.loads(d.filters)
    if (f.get("ids") and v.stix_id not in f["ids"]) or (f.get("types") and v.type not in f["types"]):
        return False
    # A blocklist delivery recorded before the hub kept its limits was judged by the line rule alone.
    limits = None
    if "blocklist" in f:
        # [ipv4, ipv6] was recorded before the hub judged warninglists: warninglisted values were listed.
        ipv4, ipv6, allow = (*f["blocklist"], True)[:3]
        limits = formats.BlocklistLimits(ipv4, ipv6, bool(allow))
    if d.endpoint in formats.FORMATS and not formats.listed(
        d.endpoint, orjson.loads(v.raw), d.at_us, f.get("include", ""), limits=limits
    ):
        return False
    if d.endpoint in formats.BLOCKLISTS and f.get("include", "") != "withdrawn" and _flagged(context, v, d.at_us):
        return False
    if f.get("spec_versions") and v.spec_version not in f["spec_versions"]:
        return False
    wanted = f.get("versions", ["last"])
    if "all" in wanted or v.version_us in wanted:
        return True
    # first/last are relative to the versions the partner could see when the page was served.
    seen = [
        s.version_us
        for s in siblings
        if _stored_at(s, first_added[s.pk], d.at_us) and _admits(snapshot, view, s, context)
    ]
    return ("last" in wanted and v.version_us == max(seen, default=None)) or (
        "first" in wanted and v.version_us == min(seen, default=None)
    )


def _flagged(context: _Context, v: Any, at_us: int) -> bool:
    """Tell whether a false-positive flag withdrew ``v``'s object from its collection's blocklists at ``at_us``."""
    return any(
        f.collection_id == v.collection_id and f.flagged_us <= at_us and (f.cleared_us is None or at_us < f.cleared_us)
        for f in context.flags
    )


def _stored_at(v: Any, added_us: int, at_us: int) -> bool:
    """Tell whether version ``v``, first added at ``added_us``, was stored (and not yet archived) at ``at_us``."""
    archived = getattr(v, "archived_us", None)
    return added_us <= at_us and (archived is None or archived > at_us)
