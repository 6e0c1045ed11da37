"""The sharing snapshot is read from one consistent state of the database, whatever commits meanwhile.

Requests read with one transaction per statement; a snapshot load is several statements (partners,
groups, members, collections, markings). A configuration change committed halfway through must not
give a request old group members with new collection readers.
"""

from __future__ import annotations

from sqlalchemy import func, select

from hub import models as m
from hub.store import snapshots
from tests import factories as f


def test_a_change_committed_during_a_snapshot_load_is_not_half_seen(hub, monkeypatch):
    with hub.session() as s:
        f.add_partner(s, "krcert")
        snapshots.bump_rules(s)
    original = snapshots.load_snapshot
    seen: list[int] = []

    def racing_load(session):  # type: ignore[no-untyped-def]
        seen.append(session.execute(select(func.count()).select_from(m.Partner)).scalar_one())
        with hub.session() as other:  # another process changes the configuration now
            f.add_partner(other, "cisa", "US")
            snapshots.bump_rules(other)
        snapshot = original(session)
        seen.append(len(snapshot.partners))
        return snapshot

    monkeypatch.setattr(snapshots, "load_snapshot", racing_load)
    with hub.read_sessions() as session:
        snapshot = hub.snapshot(session)
    assert seen[0] == seen[1], "the load saw a partner committed after it began"
    assert "cisa" not in snapshot.by_slug
    monkeypatch.setattr(snapshots, "load_snapshot", original)
    with hub.read_sessions() as session:
        assert "cisa" in hub.snapshot(session).by_slug  # the next request sees the new rules version
