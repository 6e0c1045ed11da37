"""Withdrawals (what a partner saw and may no longer see) and recalls (an originator taking an object back)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hub import models as m
from hub.store import clock
from hub.store.tables import WT


def add_withdrawals(session: Session, rows: list[dict]) -> int:
    """Insert withdrawal rows with positions from the hub clock (after every ``date_added`` handed out)."""
    if not rows:
        return 0
    clock.add_dated(session, rows, "position")
    session.connection().execute(WT.insert(), rows)
    return len(rows)


def withdrawals_for(session: Session, partner_pk: int, collection_pk: int, after: int | None, upto: int) -> list:
    """Return a partner's withdrawals in a collection with ``after`` < position <= ``upto``, in order."""
    c = WT.c
    stmt = select(
        c.id,
        c.position,
        c.at_us,
        c.stix_id,
        c.object_type,
        c.reason,
        c.tlp,
        c.originator_id,
        c.summary,
        c.recall_id,
        c.served_us,
    ).where(c.partner_id == partner_pk, c.collection_id == collection_pk, c.position <= upto)
    if after is not None:
        stmt = stmt.where(c.position > after)
    return list(session.connection().execute(stmt.order_by(c.position)).all())


def mark_withdrawals_served(
    session: Session, partner_pk: int, ids: Sequence[int], recall_ids: Iterable[int], at_us: int
) -> None:
    """Record the first time a partner's feed listed these withdrawals (and the recalls they belong to)."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        session.execute(
            update(m.Withdrawal)
            .where(m.Withdrawal.id.in_(chunk), m.Withdrawal.served_us.is_(None))
            .values(served_us=at_us)
        )
    recalls = sorted(set(recall_ids))
    if recalls:
        session.execute(
            update(m.RecallNotice)
            .where(
                m.RecallNotice.partner_id == partner_pk,
                m.RecallNotice.recall_id.in_(recalls),
                m.RecallNotice.served_us.is_(None),
            )
            .values(served_us=at_us)
        )


def save_recall(
    session: Session, stix_id: str, actor: str, reason: str, at_us: int, notices: Sequence[tuple[int, str]]
) -> int:
    """Store a recall and one notice per recipient (partner pk, slug); return the recall's id."""
    recall_id = session.execute(
        insert(m.Recall).values(stix_id=stix_id, actor=actor[:100], reason=reason, at_us=at_us).returning(m.Recall.id)
    ).scalar_one()
    if notices:
        session.execute(
            insert(m.RecallNotice),
            [
                {"recall_id": recall_id, "partner_id": pk, "partner_slug": slug, "notified_us": at_us}
                for pk, slug in notices
            ],
        )
    return recall_id


def recalls_of(session: Session, stix_id: str) -> list[tuple[m.Recall, list[m.RecallNotice]]]:
    """Every recall of an object, newest first, with its notices by partner."""
    recalls = list(
        session.scalars(
            select(m.Recall).where(m.Recall.stix_id == stix_id).order_by(m.Recall.at_us.desc(), m.Recall.id.desc())
        )
    )
    notices: dict[int, list[m.RecallNotice]] = {r.id: [] for r in recalls}
    if recalls:
        for n in session.scalars(
            select(m.RecallNotice)
            .where(m.RecallNotice.recall_id.in_(list(notices)))
            .order_by(m.RecallNotice.partner_slug)
        ):
            notices[n.recall_id].append(n)
    return [(r, notices[r.id]) for r in recalls]
