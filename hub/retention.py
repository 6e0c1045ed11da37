"""Retention: archive superseded object versions once they are older than their collection's retention.

A collection with ``retention_days`` N keeps every object's newest version forever. Any other version
of an object (one for which a newer version is stored in the same collection) whose ``date_added`` is
more than N days old moves to ``archived_versions``, values unchanged, with the time it was archived.
Collections without ``retention_days`` keep every version.

Why paging survives it: ``next`` tokens and ``added_after`` are positions on ``date_added`` (every
page is "the next rows after the last value seen"), and archiving only removes rows; it never
changes another row's ``date_added``. A client that resumes after a run gets every version still
stored after its position, exactly once. ``match[version]=last`` is unaffected (the newest is
never archived); ``all``, ``first`` and the versions endpoint range over the versions still stored.

The delivery ledger reads the archive as well, so "who received this version" stays answerable.

Work goes in bounded batches, each one write transaction under the hub's writer lock
(``clock.lock_clock``): publishers wait for at most one batch, and a run that stops half-way
leaves whole batches archived; the next run carries on. ``run`` is what ``cti-hub retention run``
calls; a scheduler may call it directly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub import stix
from hub.progress import Report, silent
from hub.store import archive, auditlog, clock, writes

if TYPE_CHECKING:
    from hub.runtime import Hub

DAY_US = 86_400_000_000
DEFAULT_BATCH = 500


@dataclass(frozen=True)
class Outcome:
    """What one run did (or, dry, would do) to one collection."""

    collection: str  # "<api root>/<alias>"
    retention_days: int
    cutoff_us: int  # versions added before this are old enough
    archived: int
    batches: int

    def summary(self, dry_run: bool = False) -> str:
        """Return the one-line report of this collection."""
        before = stix.format_timestamp(self.cutoff_us)[:19] + "Z"
        if dry_run:
            return (
                f"{self.collection}: would archive {self.archived} superseded versions added before {before} "
                f"(retention {self.retention_days} days)"
            )
        batches = f"{self.batches} batch{'es' if self.batches != 1 else ''}"
        return (
            f"{self.collection}: archived {self.archived} superseded versions added before {before} "
            f"(retention {self.retention_days} days, {batches})"
        )


def run(
    hub: Hub,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    now_us: int | None = None,
    actor: str = "cli",
    progress: Report = silent,
) -> list[Outcome]:
    """Archive, in every collection with a retention, the superseded versions older than it.

    ``now_us`` is the moment the retention counts back from (default: now). A dry run only counts
    and changes nothing; a real run writes one ``retention.run`` audit event, even when it fails
    half-way (it names the error then, and the batches already done stay archived). ``progress``
    hears of each collection counted (dry run: phase "count"), or of each batch archived (one phase
    per collection, its total counted first, when a reporter is given).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = clock.now_us() if now_us is None else now_us
    with hub.session(write=False) as session:
        targets = archive.retained_collections(session)
    done: list[Outcome] = []
    try:
        for pk, root, alias, days in targets:
            cutoff = now - days * DAY_US
            if dry_run:
                with hub.session(write=False) as session:
                    count = archive.count_superseded(session, pk, cutoff)
                done.append(Outcome(f"{root}/{alias}", days, cutoff, count, 0))
                progress("count", len(done), len(targets), unit="collections")
            else:
                done.append(_archive_collection(hub, pk, f"{root}/{alias}", days, cutoff, batch_size, progress))
    except Exception as exc:
        if not dry_run:
            with contextlib.suppress(Exception):  # the original error is the one to report
                _audit(hub, actor, done, error=f"{type(exc).__name__}: {exc}")
        raise
    if not dry_run:
        _audit(hub, actor, done)
    return done


def purge_statuses(hub: Hub, *, dry_run: bool = False, now_us: int | None = None) -> int:
    """Delete (dry: count) the TAXII status resources older than the ``status_retention_days`` setting.

    A status answers "what became of my POST"; publishers read it within minutes, so after the
    retention its request id answers 404 like one never issued.
    """
    cutoff = (clock.now_us() if now_us is None else now_us) - hub.settings["status_retention_days"] * DAY_US
    with hub.session(write=not dry_run) as session:
        return writes.purge_statuses(session, cutoff, dry_run=dry_run)


def _archive_collection(
    hub: Hub, pk: int, name: str, days: int, cutoff: int, batch_size: int, progress: Report
) -> Outcome:
    expected = None
    if progress is not silent:  # a count costs one more pass over the collection: only when someone watches
        with hub.session(write=False) as session:
            expected = archive.count_superseded(session, pk, cutoff)
        progress(name, 0, expected, unit="versions")
    total = batches = 0
    while True:
        with hub.session() as session:
            clock.lock_clock(session)
            moved = archive.archive_superseded(session, pk, cutoff, batch_size, clock.now_us())
        if moved:
            total, batches = total + moved, batches + 1
            progress(name, total, expected, unit="versions")
        if moved < batch_size:
            return Outcome(name, days, cutoff, total, batches)


def _audit(hub: Hub, actor: str, done: list[Outcome], error: str | None = None) -> None:
    detail: dict[str, Any] = {
        "archived": {o.collection: o.archived for o in done},
        "retention_days": {o.collection: o.retention_days for o in done},
    }
    if error is not None:
        detail["error"] = error
    with hub.session() as session:
        auditlog.audit(session, actor, "retention.run", f"{sum(o.archived for o in done)} versions archived", detail)
