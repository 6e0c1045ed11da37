"""What a change of the sharing rules does to what partners hold.

Versions a change made visible to a partner get a new ``date_added`` (``reannounce``); objects it
took out of a partner's view become withdrawals (``withdrawals.after_rule_change``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hub import withdrawals
from hub.progress import Report, silent
from hub.store import reads, snapshots, writes


def reannounce(session: Session, before: snapshots.Snapshot, progress: Report = silent) -> int:
    """Re-date versions that a rule change made visible to some partner, so ``added_after`` pollers get them.

    A partner that polls with ``added_after`` never looks back: an old version it may now receive would
    stay invisible to it forever under its original ``date_added``. Such versions get a new ``date_added``
    after every value handed out so far; partners that already had them may receive them once more
    (same id and version, so SIEMs de-duplicate), and nobody misses them. Objects the change took
    out of a partner's view become withdrawals that partner's feeds list (``withdrawals.after_rule_change``).
    ``progress`` hears of each collection looked at (phase "newly visible"), of the versions re-dated
    ("re-dating") and of each collection checked for withdrawals ("withdrawals").
    """
    after = snapshots.load_snapshot(session)
    found: set[int] = set()
    for done, collection in enumerate(after.collections.values(), 1):
        progress("newly visible", done - 1, len(after.collections), unit="collections")
        old_collection = before.collections.get(collection.uuid)
        if old_collection is None:
            continue  # a new collection: nobody has polled it yet
        for partner_pk, partner in after.partners.items():
            now = after.read_filter(partner_pk, collection)
            if partner.kind == "hub" or not now.readable or partner_pk not in before.partners:
                continue  # a new partner starts from the beginning anyway
            old = before.read_filter(partner_pk, old_collection)
            if old != now:
                found |= reads.newly_visible(session, collection.pk, partner_pk, now, old)
    progress("newly visible", len(after.collections), len(after.collections), unit="collections")
    progress("re-dating", 0, len(found), unit="versions")
    count = writes.restamp(session, found)
    progress("re-dating", count, len(found), unit="versions")
    withdrawals.after_rule_change(session, before, after, progress)
    return count
