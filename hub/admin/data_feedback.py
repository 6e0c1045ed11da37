"""The panel's feedback queries: one object's sightings and false-positive reports, what one partner sent
back, and the dashboard's feedback received per originator and most sighted indicators.

Every query starts from an index of the ``feedback`` table: the target (``ix_feedback_target``) for an
object, the primary key for a partner's reports (there is no reporter index, so the newest ``SCAN_CAP``
feedback versions are looked at and the page says so), ``added_us`` (``ix_feedback_added``) for the
dashboard's last ``WINDOW_DAYS`` days. The version row is joined by its primary key to tell whether a
report is current (its newest version, still stored, not revoked), superseded or gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from hub.stix import values as stix_values
from hub.store import clock, snapshots
from hub.store.tables import FB, VT

DAY_US = 86_400_000_000
WINDOW_DAYS = 30  # the dashboard's feedback panels: an all-time total would need its own index
SCAN_CAP = 20_000  # feedback versions a partner page looks through, newest first
PAGE = 50
LISTED = 500  # rows per table on an object page
TOP = 10
REPORT_KINDS = ("sighting", "false_positive", "opinion")


@dataclass(frozen=True)
class Report:
    """One stored feedback version: a sighting or opinion a partner posted about an object."""

    version_pk: int
    added_us: int
    kind: str
    stix_id: str
    target_id: str
    originator: str
    reporter: str
    count: int
    first_seen_us: int | None
    last_seen_us: int | None
    shared: bool
    state: str  # current, superseded, revoked, deleted
    tlp: int | None


@dataclass(frozen=True)
class ObjectFeedback:
    sightings: list[Report]
    false_positives: list[Report]
    more_sightings: bool
    more_false_positives: bool
    per_day: dict[int, int]  # day (days since the epoch) -> sightings, current versions by their last_seen


def _slug(snap: snapshots.Snapshot, pk: int) -> str:
    return snap.partners[pk].slug if pk in snap.partners else "?"


def _reports_stmt() -> Select:
    c = FB.c
    return select(
        c.version_pk,
        c.added_us,
        c.kind,
        c.stix_id,
        c.target_id,
        c.target_originator_id,
        c.reporter_id,
        c.count,
        c.first_seen_us,
        c.last_seen_us,
        c.shared,
        c.revoked,
        VT.c.pk.label("stored"),
        VT.c.newer_exists,
        VT.c.tlp,
    ).select_from(FB.outerjoin(VT, VT.c.pk == c.version_pk))


def _report(snap: snapshots.Snapshot, r: Row[Any]) -> Report:
    row = r._mapping
    if row["stored"] is None:
        state = "deleted"
    elif row["newer_exists"]:
        state = "superseded"
    elif row["revoked"]:
        state = "revoked"
    else:
        state = "current"
    return Report(
        row["version_pk"],
        row["added_us"],
        row["kind"],
        row["stix_id"],
        row["target_id"],
        _slug(snap, row["target_originator_id"]),
        _slug(snap, row["reporter_id"]),
        row["count"],
        row["first_seen_us"],
        row["last_seen_us"],
        bool(row["shared"]),
        state,
        row["tlp"],
    )


def object_feedback(session: Session, snap: snapshots.Snapshot, stix_id: str) -> ObjectFeedback:
    """The sightings and false-positive reports about an object (newest first), and its sightings per day."""
    tables = {}
    for kind in ("sighting", "false_positive"):
        stmt = (
            _reports_stmt()
            .where(FB.c.target_id == stix_id, FB.c.kind == kind)
            .order_by(FB.c.version_pk.desc())
            .limit(LISTED + 1)
        )
        tables[kind] = [_report(snap, r) for r in session.execute(stmt)]
    day = (func.coalesce(FB.c.last_seen_us, FB.c.added_us) // DAY_US).label("day")
    per_day = (
        select(day, func.sum(FB.c.count))
        .select_from(FB.join(VT, VT.c.pk == FB.c.version_pk))
        .where(
            FB.c.target_id == stix_id,
            FB.c.kind == "sighting",
            FB.c.revoked.is_(False),
            VT.c.newer_exists.is_(False),
        )
        .group_by(day)
    )
    return ObjectFeedback(
        tables["sighting"][:LISTED],
        tables["false_positive"][:LISTED],
        len(tables["sighting"]) > LISTED,
        len(tables["false_positive"]) > LISTED,
        {int(d): int(n) for d, n in session.execute(per_day)},
    )


@dataclass(frozen=True)
class SentBack:
    """A page of what one partner reported, among the newest ``SCAN_CAP`` feedback versions."""

    reports: list[Report]
    more: bool
    capped: bool  # the hub holds more feedback than was looked through
    kinds: dict[str, int]  # how many of each kind among the versions looked through


def sent_by(session: Session, snap: snapshots.Snapshot, partner_pk: int, page: int) -> SentBack:
    """The sightings and opinions a partner posted, newest first, page ``page`` (from 1)."""
    newest = select(FB.c.version_pk).order_by(FB.c.version_pk.desc()).limit(SCAN_CAP)
    scanned = FB.c.version_pk.in_(newest.scalar_subquery())
    mine = (scanned, FB.c.reporter_id == partner_pk, FB.c.kind.in_(REPORT_KINDS))
    stmt = _reports_stmt().where(*mine).order_by(FB.c.version_pk.desc()).offset((page - 1) * PAGE).limit(PAGE + 1)
    rows = [_report(snap, r) for r in session.execute(stmt)]
    kinds: dict[str, int] = {
        k: n for k, n in session.execute(select(FB.c.kind, func.count()).where(*mine).group_by(FB.c.kind))
    }
    beyond = select(FB.c.version_pk).order_by(FB.c.version_pk.desc()).offset(SCAN_CAP).limit(1)
    return SentBack(rows[:PAGE], len(rows) > PAGE, session.scalar(beyond) is not None, kinds)


# --------------------------------------------------------------------- dashboard


def received_per_originator(session: Session, snap: snapshots.Snapshot, now_us: int | None = None) -> list[dict]:
    """Per originator, the feedback versions it received in the last ``WINDOW_DAYS`` days, by kind.

    One pass over the window (``ix_feedback_added``), grouped by originator, kind and reporter: a few
    hundred groups, summed here, so the distinct reporters come from the same scan.
    """
    since = (clock.now_us() if now_us is None else now_us) - WINDOW_DAYS * DAY_US
    c = FB.c
    stmt = (
        select(c.target_originator_id, c.kind, c.reporter_id, func.count())
        .where(c.added_us >= since, c.kind.in_(REPORT_KINDS))
        .group_by(c.target_originator_id, c.kind, c.reporter_id)
    )
    out: dict[int, dict] = {}
    reporters: dict[int, set[int]] = {}
    for pk, kind, reporter, n in session.execute(stmt):
        entry = out.setdefault(pk, {"originator": _slug(snap, pk), **dict.fromkeys(REPORT_KINDS, 0)})
        entry[kind] += n
        reporters.setdefault(pk, set()).add(reporter)
    for pk, entry in out.items():
        entry["reporters"] = len(reporters[pk])
    return sorted(out.values(), key=lambda e: (-(e["sighting"] + e["false_positive"] + e["opinion"]), e["originator"]))


def top_sighted(session: Session, snap: snapshots.Snapshot, now_us: int | None = None) -> list[dict]:
    """The indicators with the most sightings reported in the last ``WINDOW_DAYS`` days (current versions)."""
    since = (clock.now_us() if now_us is None else now_us) - WINDOW_DAYS * DAY_US
    total = func.sum(FB.c.count).label("total")
    stmt = (
        select(FB.c.target_id, FB.c.target_originator_id, total, func.count(func.distinct(FB.c.reporter_id)))
        .select_from(FB.join(VT, VT.c.pk == FB.c.version_pk))
        .where(
            FB.c.added_us >= since,
            FB.c.kind == "sighting",
            FB.c.target_id.startswith("indicator--"),
            FB.c.revoked.is_(False),
            VT.c.newer_exists.is_(False),
        )
        .group_by(FB.c.target_id, FB.c.target_originator_id)
        .order_by(total.desc(), FB.c.target_id)
        .limit(TOP)
    )
    ranked = list(session.execute(stmt))
    names = _names(session, [r[0] for r in ranked])
    return [
        {"id": t, "originator": _slug(snap, o), "sightings": int(n), "reporters": k, "name": names.get(t, "")}
        for t, o, n, k in ranked
    ]


def _names(session: Session, stix_ids: list[str]) -> dict[str, str]:
    """The display name of each object's newest stored version."""
    if not stix_ids:
        return {}
    stmt = select(VT.c.stix_id, VT.c.raw).where(VT.c.stix_id.in_(stix_ids), VT.c.newer_exists.is_(False))
    return {i: stix_values.display_name(orjson.loads(raw)) for i, raw in session.execute(stmt)}
