"""The hash-chained audit trail: each event's hash covers the previous event's hash and its own fields."""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hub import models as m
from hub.store import clock


def audit(
    session: Session, actor: str, action: str, target: str = "", detail: dict | None = None, source: str = ""
) -> None:
    """Append an event to the hash-chained audit trail, in the caller's transaction."""
    row = {
        "at_us": clock.now_us(),
        "actor": actor[:100],
        "action": action,
        "target": target[:200],
        "source": source[:64],
        "detail": orjson.dumps(detail or {}).decode(),
    }
    prev = _lock_audit_head(session)
    digest = audit_hash(prev, row)
    event_id = session.execute(
        insert(m.AuditEvent).values(**row, prev_hash=prev, hash=digest).returning(m.AuditEvent.id)
    ).scalar_one()
    session.execute(update(m.AuditHead).where(m.AuditHead.id == 1).values(last_event_id=event_id, hash=digest))


AUDIT_FIELDS = ("at_us", "actor", "action", "target", "source", "detail")


def audit_hash(prev_hash: str, row: dict) -> str:
    """Return sha256 over the previous event's hash and this event's canonical JSON (sorted keys)."""
    body = orjson.dumps({k: row[k] for k in AUDIT_FIELDS}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def _lock_audit_head(session: Session) -> str:
    """Take the hub-wide writer lock (the clock row) and return the hash at the head of the chain.

    The same row ``lock_clock`` and ``bump_rules`` lock, so every writer queues on one lock, in
    one order: two writers can neither interleave their links nor deadlock each other.
    """
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(clock_us=m.HubState.clock_us))
    head = session.execute(select(m.AuditHead.hash).where(m.AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        session.execute(insert(m.AuditHead).values(id=1, last_event_id=0, hash=""))
        head = ""
    return head


def audit_head(session: Session) -> tuple[int, str]:
    """Return (id, hash) of the newest audit event as the chain head records it."""
    row = session.execute(select(m.AuditHead.last_event_id, m.AuditHead.hash).where(m.AuditHead.id == 1)).first()
    return (row[0], row[1]) if row is not None else (0, "")


def audit_events(
    session: Session,
    *,
    after_id: int = 0,
    limit: int = 1000,
    action: str | None = None,
    actor: str | None = None,
    since_us: int | None = None,
) -> list[m.AuditEvent]:
    """Return audit events in chain order (id), optionally filtered."""
    stmt = select(m.AuditEvent).where(m.AuditEvent.id > after_id)
    if action:
        stmt = stmt.where(m.AuditEvent.action == action)
    if actor:
        stmt = stmt.where(m.AuditEvent.actor == actor)
    if since_us is not None:
        stmt = stmt.where(m.AuditEvent.at_us >= since_us)
    return list(session.scalars(stmt.order_by(m.AuditEvent.id).limit(limit)))
