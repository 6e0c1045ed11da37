"""The panel's search terms of object versions (``object_values``): written with each version, searched by prefix.

A term is a lower-cased name, alias or observable value (:func:`hub.stix.values.search_terms`). A prefix
search is one range of the ``(term, version_pk)`` index: ``term >= 'q'`` and ``term < 'q' + U+10FFFF``,
exact in binary order, which SQLite uses for text and the ``term`` column's "C" collation gives on
PostgreSQL. No raw JSON is read to search, whatever the number of versions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

import orjson
from sqlalchemy import Table, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from hub import models as m
from hub.stix import values as stix_values
from hub.store.tables import VT

TERMS = cast(Table, m.ObjectValue.__table__)
TERM_COLUMNS = ("version_pk", "kind", "term")
_BEYOND = chr(0x10FFFF)  # sorts after every character a term can hold


def terms_of(version_pk: int, raw: str) -> Iterator[tuple[int, str, str]]:
    """The ``object_values`` rows of one stored version, as tuples of ``TERM_COLUMNS``."""
    for kind, term in stix_values.search_terms(orjson.loads(raw)):
        yield version_pk, kind, term


def term_rows(
    session: Session, rows: list[dict], terms: Sequence[list[tuple[str, str]] | None] = ()
) -> list[tuple[int, str, str]]:
    """The ``object_values`` rows (tuples of ``TERM_COLUMNS``) of version rows just inserted under the writer lock.

    ``terms`` may hold each row's :func:`hub.stix.values.search_terms` worked out ahead (a bulk import's
    validation worker does), None where not: those are worked out here from the row's raw JSON.

    Their ``pk`` is read back by (collection, ``date_added``), unique and handed out under the same lock,
    in one index range per collection: every row of a collection from its first new ``date_added`` on
    is one of these.
    """
    first: dict[int, int] = {}
    for row in rows:
        first[row["collection_id"]] = min(row["date_added"], first.get(row["collection_id"], row["date_added"]))
    pks: dict[tuple[int, int], int] = {}
    for collection_pk, since in first.items():
        stmt = select(VT.c.pk, VT.c.date_added).where(
            VT.c.collection_id == collection_pk, VT.c.date_added >= since
        )  # no "+ 0" (tables.of_collection): this is a range of the (collection, date_added) index
        pks.update({(collection_pk, added): pk for pk, added in session.connection().execute(stmt)})
    out: list[tuple[int, str, str]] = []
    for i, row in enumerate(rows):
        pk = pks[(row["collection_id"], row["date_added"])]
        found = terms[i] if i < len(terms) else None
        if found is None:
            out += terms_of(pk, row["raw"])
        else:
            out += [(pk, kind, term) for kind, term in found]
    return out


def matching(text: str, *, exact: bool = False) -> Select:
    """The ``version_pk`` of every version with a term equal to, or starting with, ``text`` (normalised)."""
    term = stix_values.normalise(text)
    stmt = select(TERMS.c.version_pk)
    if exact:
        return stmt.where(TERMS.c.term == term)
    return stmt.where(TERMS.c.term >= term, TERMS.c.term < term + _BEYOND)
