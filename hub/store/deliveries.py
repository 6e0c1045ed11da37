"""The delivery ledger: what each page served held, written before the page leaves."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, exc, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub import models as m
from hub.store.tables import DT, insert_sql


def append_deliveries(engine: Engine, rows: list[dict], view: dict | None = None) -> None:
    """Append deliveries in one short transaction that does not wait for the disk.

    The ledger is written on every page served, before the page leaves, so this is the cheapest write
    the engine offers: on PostgreSQL the whole transaction (setting, rows, commit) goes out as one
    pipeline, a single exchange with the server; on SQLite one Core transaction at ``synchronous=NORMAL``.
    With ``view``, the partner's read filter for its rules version is saved too (once; repeats are ignored).
    """
    if engine.dialect.name == "postgresql":
        _append_deliveries_pg(engine, rows, view)
        return
    with engine.connect() as conn:
        conn = conn.execution_options(hub_write=True, hub_relaxed=True)
        with conn.begin():
            if view is not None:
                conn.execute(_insert_view(conn.dialect.name), view)
            conn.execute(_INSERT_DELIVERY, rows)


def _append_deliveries_pg(engine: Engine, rows: list[dict], view: dict | None) -> None:
    import psycopg

    delivery_sql, _ = insert_sql(engine.dialect, tuple(rows[0]), DT)  # the driver's named parameters
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None, "an open connection has its driver connection"
        try:
            with raw.pipeline():
                raw.execute("SET LOCAL synchronous_commit TO OFF")  # opens the transaction
                if view is not None:
                    raw.execute(str(_insert_view("postgresql").compile(dialect=engine.dialect)), view)
                raw.cursor().executemany(delivery_sql, rows)
                raw.commit()
        except psycopg.Error as error:
            # Raised as SQLAlchemy raises driver errors, so callers (and the 503 handler) see one kind.
            broken = raw.broken or raw.closed
            if broken:
                conn.invalidate()
            raise exc.DBAPIError.instance(
                "INSERT INTO deliveries", None, error, psycopg.Error, connection_invalidated=broken
            ) from error


_INSERT_DELIVERY = insert(DT)  # built once: one row per page served


@functools.cache
def _insert_view(dialect_name: str) -> Any:
    """INSERT of a partner's saved read filter that ignores a repeat (another worker saved it first)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(m.DeliveryView.__table__).on_conflict_do_nothing()


def deliveries_covering(
    session: Session, collection_pk: int, date_added: int, *, before_us: int | None = None
) -> list[m.Delivery]:
    """Return the deliveries of a collection whose ``date_added`` range covers one value, oldest first.

    ``before_us`` keeps only deliveries made before then (while a re-dated version still held the value).
    """
    stmt = select(m.Delivery).where(
        m.Delivery.collection_id == collection_pk,
        m.Delivery.first_added <= date_added,
        m.Delivery.last_added >= date_added,
    )
    if before_us is not None:
        stmt = stmt.where(m.Delivery.at_us < before_us)
    return list(session.scalars(stmt.order_by(m.Delivery.at_us)))


def former_dates(session: Session, version_pks: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
    """The (date_added, replaced_us) pairs each version held before rule changes re-dated it."""
    out: dict[int, list[tuple[int, int]]] = {}
    pks = list(version_pks)
    for start in range(0, len(pks), 500):
        stmt = select(m.VersionRedate).where(m.VersionRedate.version_pk.in_(pks[start : start + 500]))
        for r in session.scalars(stmt):
            out.setdefault(r.version_pk, []).append((r.date_added, r.replaced_us))
    return out


def delivery_view(session: Session, partner_pk: int, collection_pk: int, rules_version: int) -> str | None:
    return session.execute(
        select(m.DeliveryView.read_filter).where(
            m.DeliveryView.partner_id == partner_pk,
            m.DeliveryView.collection_id == collection_pk,
            m.DeliveryView.rules_version == rules_version,
        )
    ).scalar_one_or_none()
