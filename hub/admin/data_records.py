"""The panel's audit log and stored objects: filtered pages, the CSV export, who received an object."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub import ledger
from hub import models as m
from hub.admin.display import when
from hub.errors import BadRequest
from hub.policy import TLP
from hub.store import snapshots

PAGE = 50


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
    id: str = ""
    type: str = ""
    partner: str = ""
    tlp: str = ""
    text: str = ""
    collection: str = ""


def search_objects(
    session: Session, snap: snapshots.Snapshot, q: ObjectSearch, page: int
) -> tuple[list[m.ObjectVersion], bool]:
    """Newest first, every version matching; an administrator's view of all objects."""
    V = m.ObjectVersion
    stmt = select(V)
    if q.id:
        stmt = stmt.where(V.stix_id.startswith(q.id, autoescape=True))
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
        stmt = stmt.where(V.raw.contains(q.text, autoescape=True))
    stmt = stmt.order_by(V.date_added.desc()).offset((page - 1) * PAGE).limit(PAGE + 1)
    rows = list(session.scalars(stmt))
    return rows[:PAGE], len(rows) > PAGE


def object_versions(session: Session, stix_id: str) -> list[m.ObjectVersion]:
    return list(
        session.scalars(
            select(m.ObjectVersion)
            .where(m.ObjectVersion.stix_id == stix_id)
            .order_by(m.ObjectVersion.collection_id, m.ObjectVersion.version_us.desc())
        )
    )


def recipients(session: Session, snap: snapshots.Snapshot, stix_id: str) -> list[str]:
    """The partners the delivery ledger says received any version of an object."""
    return sorted({r.partner for r in ledger.who_received(session, snap, stix_id)})


def object_types(session: Session) -> list[str]:
    return list(session.scalars(select(m.ObjectVersion.type).distinct().order_by(m.ObjectVersion.type)))
