"""The running hub: settings, database engine and sessions, and the sharing snapshot shared by requests.

Every entry point builds one ``Hub`` (the TAXII app, the CLI, the feeds, the admin panel) and
passes it to the use cases: ``hub.ingest``, ``hub.reference``, ``hub.accounts`` and the others take
a session from it, so that their callers decide the unit of work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from hub import db, replicas
from hub.store import snapshots

T = TypeVar("T")


@dataclass
class LedgerBuffer:
    """This process's delivery-ledger state for one hub (see ``hub.ledger``).

    ``saved_views``: the (partner, collection, rules_version) read filters already saved; ``empty``:
    the empty polls waiting to be written in one batch, the first of them taken at ``since``.
    """

    saved_views: set[tuple[int, int, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    empty: dict[tuple, dict] = field(default_factory=dict)
    since: int = 0
    flushed_at_exit: bool = False


class Hub:
    """One hub instance: settings, database and the snapshot cache shared by requests."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.engine = db.make_engine(settings["database_url"])
        self.sessions = db.session_factory(self.engine)
        self.read_sessions = db.read_factory(self.engine)
        self._snapshot_sessions = db.consistent_factory(self.engine)
        self.write_sessions = db.session_factory(self.engine, write=True)
        self.relaxed_sessions = db.session_factory(self.engine, relaxed=True)
        self.replicas = replicas.ReplicaSet.from_settings(settings, self.engine)
        self.pepper: str = settings["secret_key"]
        self._snapshot: snapshots.Snapshot | None = None
        self.ledger_buffer = LedgerBuffer()

    @contextmanager
    def session(self, *, write: bool = True, relaxed: bool = False) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error (see ``db.session_factory``)."""
        factory = self.relaxed_sessions if relaxed else self.write_sessions if write else self.sessions
        with db.transaction(factory) as session:
            yield session

    def read(self, work: Callable[[Session], T], *, position: int | None = None) -> T:
        """Run read-only ``work`` on a replica that has replayed ``position`` (a hub-clock value), else the primary.

        Each statement of ``work`` is its own transaction (``db.read_factory``); a replica failing midway
        has ``work`` run again on the primary, so ``work`` must not write.
        """
        return replicas.read(self.replicas, self.read_sessions, work, position=position)

    def reading(self, *, lsn: int | None = None) -> AbstractContextManager[Session]:
        """A read-only transaction on a replica that has replayed WAL position ``lsn``, else on the primary."""
        return replicas.unit(self.replicas, self.sessions, lsn=lsn)

    def wal_position(self) -> int:
        """The primary's current WAL position (PostgreSQL): a replica that replayed it holds every commit so far."""
        with db.transaction(self.sessions) as session:
            return replicas.primary_lsn(session)

    def close(self) -> None:
        """Stop checking replicas and close every database connection."""
        if self.replicas is not None:
            self.replicas.close()
        self.engine.dispose()

    def snapshot(self, session: Session, version: int | None = None) -> snapshots.Snapshot:
        """Return the sharing snapshot, reloading it when any process changed the rules.

        ``version`` is the rules version the caller already read in this unit of work (with its key);
        without it, it is read here.
        """
        if version is None and isinstance(session, replicas.ReplicaSession):
            # The rules always come from the primary: a replica may not have replayed the newest change yet.
            with db.transaction(self.sessions) as primary:
                version = snapshots.rules_version(primary)
        elif version is None:
            version = snapshots.rules_version(session)
        cached = self._snapshot
        if cached is None or cached.rules_version != version:
            if isinstance(session, db.ReadSession):
                # A read session takes a fresh view per statement: read in one consistent snapshot, in a
                # transaction of its own, so that a configuration change committed halfway through does
                # not mix old group members with new collection readers.
                with db.transaction(self._snapshot_sessions) as consistent:
                    cached = snapshots.load_snapshot(consistent)
            else:
                cached = snapshots.load_snapshot(session)  # the caller's unit of work, its own changes included
            self._snapshot = cached
        return cached
