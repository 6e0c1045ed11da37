"""The panel's audit log and stored objects: filtered pages, the CSV export, who received an object."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub import ledger
from hub import models as m
from hub.admin.display import when
from hub.errors import BadRequest, NotFound
from hub.policy import TLP
from hub.stix import values as stix_values
from hub.store import snapshots, values

PAGE = 50
LISTED_VALUES = 3  # observable values shown per object in the list
STIX_ID = re.compile(r"^[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --------------------------------------------------------------------- audit


@dataclass(frozen=True)
class AuditFilter:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: str = ""
    until: str = ""


def _day_us(text: str, *, end: bool = False) -> int | None:
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"'{text}' is not a date (YYYY-MM-DD)") from None
    if end:
        day += timedelta(days=1)
    return int(day.timestamp() * 1_000_000)


def _audit_stmt(f: AuditFilter):
    stmt = select(m.AuditEvent)
    if f.actor:
        stmt = stmt.where(m.AuditEvent.actor == f.actor)
    if f.action:
        stmt = stmt.where(or_(m.AuditEvent.action == f.action, m.AuditEvent.action.like(f.action + ".%")))
    if f.target:
        stmt = stmt.where(m.AuditEvent.target.contains(f.target, autoescape=True))
    since, until = _day_us(f.since), _day_us(f.until, end=True)
    if since is not None:
        stmt = stmt.where(m.AuditEvent.at_us >= since)
    if until is not None:
        stmt = stmt.where(m.AuditEvent.at_us < until)
    return stmt.order_by(m.AuditEvent.at_us.desc(), m.AuditEvent.id.desc())


def audit_page(session: Session, f: AuditFilter, page: int) -> tuple[list[m.AuditEvent], bool]:
    rows = list(session.scalars(_audit_stmt(f).offset((page - 1) * PAGE).limit(PAGE + 1)))
    return rows[:PAGE], len(rows) > PAGE


def audit_actions(session: Session) -> list[str]:
    return list(session.scalars(select(m.AuditEvent.action).distinct().order_by(m.AuditEvent.action)))


def audit_csv(session: Session, f: AuditFilter) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "actor", "action", "target", "source", "detail"])
    for e in session.scalars(_audit_stmt(f).limit(100_000)):
        cells = [when(e.at_us), e.actor, e.action, e.target, e.source, e.detail]
        # A cell starting with = + - @ (or tab, CR) is a formula to spreadsheets: prefix it so it stays text.
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells])
    return out.getvalue()


# --------------------------------------------------------------------- objects


@dataclass(frozen=True)
class ObjectSearch:
    """The objects page's filters; ``text`` matches names and observable values, ``before`` is the keyset cursor."""

    id: str = ""
    type: str = ""
    partner: str = ""
    tlp: str = ""
    text: str = ""
    collection: str = ""
    exact: bool = False
    before: int | None = None  # list versions stored before this one (its pk): the next page


@dataclass(frozen=True)
class Listed:
    """One version in the objects list, with what an analyst recognises it by."""

    row: m.ObjectVersion
    name: str
    values: list[tuple[str, str]]  # (path, value), the first few the object names


def _listed(row: m.ObjectVersion) -> Listed:
    obj = orjson.loads(row.raw)
    return Listed(row, stix_values.display_name(obj), stix_values.observables(obj)[:LISTED_VALUES])


def search_objects(session: Session, snap: snapshots.Snapshot, q: ObjectSearch) -> tuple[list[Listed], int | None]:
    """Newest stored first, every version matching; an administrator's view of all objects.

    Return a page and the cursor of the next one (None on the last page). Every filter is an
    indexed column or the search terms' index (``hub.store.values``): no raw JSON is searched.
    """
    V = m.ObjectVersion
    stmt = select(V)
    if q.id:
        full = STIX_ID.match(q.id) is not None
        stmt = stmt.where(V.stix_id == q.id if full else V.stix_id.startswith(q.id, autoescape=True))
    if q.type:
        stmt = stmt.where(V.type == q.type)
    if q.partner:
        pk = snap.by_slug.get(q.partner)
        if pk is None:
            raise BadRequest(f"unknown partner '{q.partner}'")
        stmt = stmt.where(V.originator_id == pk)
    if q.tlp:
        stmt = stmt.where(V.tlp == int(TLP.parse(q.tlp)))
    if q.collection:
        info = snap.collections.get(q.collection)
        if info is None:
            raise BadRequest(f"unknown collection '{q.collection}'")
        stmt = stmt.where(V.collection_id == info.pk)
    if q.text:
        if not stix_values.normalise(q.text):
            raise BadRequest("the value or name to search for is empty")
        stmt = stmt.where(V.pk.in_(values.matching(q.text, exact=q.exact)))
    if q.before is not None:
        stmt = stmt.where(V.pk < q.before)
    rows = list(session.scalars(stmt.order_by(V.pk.desc()).limit(PAGE + 1)))
    return [_listed(r) for r in rows[:PAGE]], rows[PAGE - 1].pk if len(rows) > PAGE else None


def object_versions(session: Session, stix_id: str) -> list[m.ObjectVersion]:
    return list(
        session.scalars(
            select(m.ObjectVersion)
            .where(m.ObjectVersion.stix_id == stix_id)
            .order_by(m.ObjectVersion.collection_id, m.ObjectVersion.version_us.desc())
        )
    )


WITHDRAWN_BECAUSE = {
    "rules": "the sharing rules no longer release it",
    "deleted": "its originator deleted it",
    "recalled": "an administrator recalled it",
}


@dataclass(frozen=True)
class Withdrawn:
    """One partner that lost an object from one collection, and whether its feed has listed the withdrawal."""

    at_us: int
    partner: str
    collection: str
    reason: str
    served_us: int | None


def withdrawals_of(session: Session, snap: snapshots.Snapshot, stix_id: str) -> list[Withdrawn]:
    """Every withdrawal of an object from a partner's view, newest first."""
    names = {c.pk: f"{c.api_root}/{c.alias}" for c in snap.collections.values()}
    W = m.Withdrawal
    stmt = select(W).where(W.stix_id == stix_id).order_by(W.position.desc())
    return [
        Withdrawn(
            w.at_us,
            snap.partners[w.partner_id].slug if w.partner_id in snap.partners else "?",
            names.get(w.collection_id, "?"),
            WITHDRAWN_BECAUSE.get(w.reason, w.reason),
            w.served_us,
        )
        for w in session.scalars(stmt)
    ]


def recipients(session: Session, snap: snapshots.Snapshot, stix_id: str) -> list[str]:
    """The partners the delivery ledger says received any version of an object; none once it is deleted."""
    try:
        return sorted({r.partner for r in ledger.who_received(session, snap, stix_id)})
    except NotFound:  # no version stored or archived: the ledger cannot tell which ranges held it
        return []
