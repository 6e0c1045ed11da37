"""The tables the store's statements name, and the clauses several of its modules share."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, cast

import orjson
from sqlalchemy import String, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hub import models as m

V = m.ObjectVersion
VT = cast(Table, m.ObjectVersion.__table__)
AT = cast(Table, m.ArchivedVersion.__table__)
OO = cast(Table, m.ObjectOrigin.__table__)
WT = cast(Table, m.Withdrawal.__table__)
DT = cast(Table, m.Delivery.__table__)
MK, PT = cast(Table, m.Marking.__table__), cast(Table, m.Partner.__table__)
RSM = cast(Table, m.RestrictionSetMarking.__table__)
FB = cast(Table, m.Feedback.__table__)


def stix_id_among(session: Session, stix_ids: Iterable[str], column: Any = V.stix_id) -> ColumnElement[bool]:
    """``stix_id IN (...)`` with the whole list bound as one parameter (a JSON text or an array).

    An expanding IN list costs SQLAlchemy work per value and a new statement per list length; one
    parameter keeps the statement cached (and prepared on PostgreSQL) however many ids an envelope has.
    """
    ids = sorted(set(stix_ids))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("stix_ids", ids, type_=postgresql.ARRAY(String)))
    listed = func.json_each(bindparam("stix_ids", orjson.dumps(ids).decode())).table_valued("value")
    return column.in_(select(listed.c.value))


def of_collection(column: Any, collection_pk: Any) -> ColumnElement[bool]:
    """``collection_id = pk`` for statements that look objects up by id: "+ 0" keeps the planner on the id.

    A collection that filled since the last ANALYZE looks empty to PostgreSQL's planner, which then
    walks the whole collection through a collection index (measured: 50 ms instead of 1 ms for an
    envelope's lookups). The ids are always the selective part.
    """
    return column + 0 == collection_pk


@functools.lru_cache(maxsize=8)
def insert_sql(dialect: Any, keys: tuple[str, ...], table: Table = VT) -> tuple[str, tuple[str, ...] | None]:
    """The INSERT for these columns, and the order of its parameters when the dialect's are positional."""
    compiled = table.insert().compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    return compiled.string, tuple(compiled.positiontup or ()) if compiled.positional else None
