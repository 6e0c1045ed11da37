"""What the benchmarks share: an empty, migrated hub on SQLite or on a PostgreSQL database.

The scripts put the repository on ``sys.path`` before they import this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, make_url, text

from hub import create_app, db
from hub.runtime import Hub


def _on_server(url: str, statement: Callable[[Any, str], None]) -> None:
    """Run ``statement(connection, database name)`` on the maintenance database of ``url``'s server."""
    target = make_url(db.make_engine(url).url)
    admin = create_engine(
        target.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            statement(conn, str(target.database))
    finally:
        admin.dispose()


def create_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names when the server does not have it yet."""

    def create(conn: Any, name: str) -> None:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

    _on_server(url, create)


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database ``url`` names, if it exists, closing its connections."""
    _on_server(url, lambda conn, name: conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))


def fresh_hub(db_url: str | None, data_dir: str, sqlite_file: str, **settings: Any) -> tuple[Flask, Hub]:
    """Return an app and its hub on an empty database at the newest migration.

    ``db_url`` None: SQLite at ``data_dir/sqlite_file``. A PostgreSQL database is created if missing
    and its ``public`` schema dropped and recreated. ``settings`` add to the benchmark defaults (no
    rate limit).
    """
    url = db_url or f"sqlite:///{data_dir}/{sqlite_file}"
    if db_url:
        create_database(db_url)
    app = create_app(
        {
            "database_url": url,
            "secret_key": "bench-secret",
            "data_dir": data_dir,
            "rate_limit_per_minute": 0,
            **settings,
        }
    )
    hub = app.extensions["cti_hub"]
    if db_url:
        with hub.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    db.upgrade(hub.engine)
    return app, hub
