"""Fixtures: every storage test runs on SQLite (default) or PostgreSQL (``--db=postgres``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from hub import db, models

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PG_URL = os.environ.get("HUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default="sqlite", choices=["sqlite", "postgres"], help="storage engine to test")


@pytest.fixture(scope="session")
def db_engine_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def db_template(db_engine_name: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session: a template SQLite file, or a fresh PostgreSQL schema."""
    if db_engine_name == "sqlite":
        path = tmp_path_factory.mktemp("template") / "hub.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        engine.dispose()
        return str(path)
    engine = db.make_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    db.upgrade(engine)
    engine.dispose()
    return PG_URL


@pytest.fixture
def database_url(db_engine_name: str, db_template: str, tmp_path: Path) -> str:
    """A migrated, empty database for one test."""
    if db_engine_name == "sqlite":
        target = tmp_path / "hub.db"
        shutil.copy(db_template, target)
        return f"sqlite:///{target}"
    engine = db.make_engine(db_template)
    tables = ", ".join(t.name for t in models.Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO hub_state (id, clock_us, rules_version, name, contact, identity_id) "
                          "VALUES (1, 0, 1, 'cti-hub', '', '')"))
    engine.dispose()
    return db_template


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> dict:
    return {"database_url": database_url, "data_dir": str(tmp_path), "secret_key": "test-secret-key"}


@pytest.fixture
def make_app(settings):
    """Build apps on the test database (with setting overrides); their connections close at teardown."""
    from hub import create_app

    built = []

    def make(**overrides):
        app = create_app({**settings, **overrides})
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["cti_hub"].engine.dispose()
