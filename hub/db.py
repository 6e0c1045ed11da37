"""Engine and sessions: SQLite (WAL, embedded default) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from hub.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises concurrent `db upgrade` runs.
MIGRATION_LOCK = 0x6374_6968_7562_0001
# PostgreSQL: a statement run this many times on a connection becomes a server-side prepared statement
# (parsed and planned once), and each connection keeps up to PREPARED_MAX of them.
PREPARE_THRESHOLD = 1
PREPARED_MAX = 256
# SQLite: pages (4 KB) the write-ahead log may hold before a commit checkpoints it into the database.
WAL_CHECKPOINT_PAGES = 16_000
# A pooled PostgreSQL connection idle for longer than this is pinged before use; busy ones are not.
PING_AFTER_IDLE_S = 10.0


SUPPORTED = "sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a ``database_url`` setting, or ConfigError naming what is wrong with it.

    ``postgres://`` (Heroku's and libpq's spelling) and ``postgresql://`` both mean PostgreSQL via psycopg.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url.removeprefix(prefix)
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigError(f"database_url {url!r} is not a database URL; expected {SUPPORTED}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        backend = parsed.get_backend_name()
        raise ConfigError(f"database_url: the hub runs on SQLite or PostgreSQL, not {backend!r}; expected {SUPPORTED}")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **connect: Any) -> Engine:
    """Create an engine tuned for the hub's read-heavy, serialised-write workload.

    ``connect``: further libpq connection parameters for PostgreSQL (``connect_timeout``, ``options``).
    """
    url = engine_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _tune_sqlite(engine)
        return engine
    engine = create_engine(
        url, pool_size=10, max_overflow=20, connect_args={"prepare_threshold": PREPARE_THRESHOLD, **connect}
    )
    _ping_when_idle(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.prepared_max = PREPARED_MAX
        # The hub's reads are keyset pages of at most a thousand rows: starting parallel workers costs
        # more than it saves (measured: 20 ms against 5.5 ms for a page at a million versions), and the
        # cores are better spent on the concurrent requests of other partners.
        autocommit, dbapi_conn.autocommit = dbapi_conn.autocommit, True
        dbapi_conn.execute("SET max_parallel_workers_per_gather = 0")
        dbapi_conn.autocommit = autocommit

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        if options.get("hub_relaxed"):
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
        if options.get("hub_migrate"):
            # Held until this migration transaction ends: a second upgrader waits, then finds nothing to do.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle (a server restart or a dropped link).

    A ping on every checkout (``pool_pre_ping``) costs a round trip per unit of work; connections in
    steady use are known to be alive. A dead one is replaced before the request sees it.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
            dbapi_conn.rollback()
        except Exception as error:  # noqa: BLE001 - any failure means the connection is unusable
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _enter_wal(cur: sqlite3.Cursor, *, attempts: int = 300) -> None:
    """Switch the database to write-ahead logging, waiting for connections opened at the same moment.

    Two processes opening a new database file together (hosts starting at once, concurrent
    ``db upgrade``) both ask for the switch; SQLite refuses one of them at once with "database is
    locked" rather than wait (each holds the shared lock the other needs released), so the busy
    timeout does not apply. The switch is retried for up to about 30 s, as the busy timeout would wait.
    """
    for attempt in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        _enter_wal(cur)
        # FULL: a commit the hub acknowledged with 202 survives power loss, not just a crash.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # A small per-connection cache keeps worker memory flat; the OS page cache holds the hot pages.
        cur.execute("PRAGMA cache_size=-8192")
        # Checkpoint the write-ahead log every 64 MB rather than every 4 MB: an envelope of a thousand
        # versions dirties thousands of index pages, which a checkpoint per commit would copy and
        # sync each time (measured: bulk import 15% faster at a million versions).
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock up front: a deferred transaction that read first and then
        # writes fails at once (SQLITE_BUSY_SNAPSHOT) when another writer committed in between.
        options = conn.get_execution_options()
        if options.get("hub_statement_reads"):
            return  # see read_factory: each statement is its own transaction
        # Relaxed units of work (the delivery ledger) skip the fsync: a crash of the machine may lose the
        # last few of them, never an acknowledged publication, which keeps FULL.
        conn.exec_driver_sql(f"PRAGMA synchronous={'NORMAL' if options.get('hub_relaxed') else 'FULL'}")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("hub_write") else "BEGIN")


class HubSession(Session):
    """A session whose ``close`` survives a connection the database server already dropped."""

    def close(self) -> None:
        try:
            super().close()
        except DBAPIError as error:
            # Closing rolls back; on a terminated connection (failover, pg_terminate_backend) that
            # rollback fails although the server already ended the transaction. Discard the connection
            # instead of failing a request whose answer is ready (its commit, if any, succeeded).
            if not error.connection_invalidated:
                raise
            self.invalidate()


def session_factory(engine: Engine, *, write: bool = False, relaxed: bool = False) -> sessionmaker[Session]:
    """Sessions for reading, or (``write``) for units of work that change the database.

    ``relaxed`` writes commit without waiting for the disk (records the hub can afford to lose on a
    power cut, such as delivery-ledger rows); acknowledged publications never use them.
    """
    bind = (
        engine.execution_options(hub_write=True, hub_relaxed=True)
        if relaxed
        else engine.execution_options(hub_write=True)
        if write
        else engine
    )
    return sessionmaker(bind, class_=HubSession, expire_on_commit=False)


def read_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for read-only requests (TAXII reads): each statement runs as its own transaction.

    On PostgreSQL (autocommit) that spares every request the BEGIN and ROLLBACK round trips, and
    nothing is lost: under READ COMMITTED, PostgreSQL's default level, each statement of a transaction
    takes its own snapshot anyway. On SQLite no read snapshot stays open while the request writes its
    delivery-ledger row, so that commit can checkpoint the write-ahead log instead of growing it.
    """
    if engine.dialect.name == "postgresql":
        return sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), class_=ReadSession, expire_on_commit=False
        )
    return sessionmaker(engine.execution_options(hub_statement_reads=True), class_=ReadSession, expire_on_commit=False)


class ReadSession(HubSession):
    """A session of ``read_factory``: each statement sees the database as of its own start."""


def consistent_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose statements all read one snapshot of the database (several related reads).

    PostgreSQL needs REPEATABLE READ for that; a SQLite transaction in WAL mode reads one snapshot.
    """
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    return sessionmaker(engine, class_=HubSession, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Run a unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migrations; safe to run on every start.

    Sub-systems add their tables in migrations of their own, so there may be several heads. Several
    processes may upgrade at once (hosts starting together): the migration runs in one transaction
    that first takes the writer lock (SQLite) or an advisory lock (PostgreSQL), so the others wait and
    then read an up-to-date version table.
    """
    command.upgrade(alembic_config(engine.execution_options(hub_write=True, hub_migrate=True)), "heads")


def is_current(engine: Engine) -> bool:
    """Tell whether the database carries the newest migration (one query: health checks call it often)."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == _script_heads()


@functools.cache
def _script_heads() -> frozenset[str]:
    """The newest revisions of the migrations shipped with this code (read once per process)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())
