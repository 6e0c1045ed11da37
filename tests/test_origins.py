"""``writes.register_origins``: the first publication of an id wins, in one statement per envelope."""

from __future__ import annotations

from sqlalchemy import select

from hub import models as m
from hub.store import writes
from tests import factories as f

ID = "indicator--8e2e2d2b-17d4-4cbe-8938-3a2d5e1e7a01"
OTHER = "indicator--8e2e2d2b-17d4-4cbe-8938-3a2d5e1e7a02"
THIRD = "indicator--8e2e2d2b-17d4-4cbe-8938-3a2d5e1e7a03"


def test_the_first_publication_of_an_id_wins(hub):
    with hub.session() as s:
        kr_row, us_row = f.add_partner(s, "krcert", "KR"), f.add_partner(s, "cisa", "US")
        s.flush()
        kr, us = kr_row.id, us_row.id
        writes.register_origins(s, [{"stix_id": ID, "originator_id": kr, "date_added": 10}])
    with hub.session() as s:
        writes.register_origins(
            s,
            [
                {"stix_id": ID.upper().replace("INDICATOR", "indicator"), "originator_id": us, "date_added": 20},
                {"stix_id": OTHER, "originator_id": us, "date_added": 21, "quarantined": True},
                {"stix_id": THIRD, "originator_id": us, "date_added": 22},
                {"stix_id": THIRD.upper().replace("INDICATOR", "indicator"), "originator_id": kr, "date_added": 23},
                {"stix_id": OTHER, "originator_id": kr, "date_added": 24, "quarantined": False},
            ],
        )
        writes.register_origins(s, [])
    with hub.session(write=False) as s:
        rows = s.execute(select(m.ObjectOrigin.stix_key, m.ObjectOrigin.originator_id, m.ObjectOrigin.created_us))
        origins = {key: (originator, created) for key, originator, created in rows}
    assert origins == {
        ID: (kr, 10),  # stored before: a later publication, in any spelling, changes nothing
        THIRD: (us, 22),  # the first of an envelope's spellings wins
        OTHER: (kr, 24),  # a quarantined copy registers no origin
    }
