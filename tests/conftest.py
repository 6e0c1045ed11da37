"""Fixtures: every storage test runs on SQLite (default) or PostgreSQL (``--db=postgres``)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub import db, models
from tests.live import serve_demo
from tests.panel import logged_in

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# A new deployment requires a second factor for panel accounts (``admin_mfa_required`` is on by
# default). The panel tests log in with a password alone, so the suite turns it off for every app,
# CLI run and server it starts (they inherit this environment); the tests of the second factor turn
# it on again where they need it (tests/test_admin_mfa.py).
os.environ["CTI_HUB_ADMIN_MFA_REQUIRED"] = "false"
PG_URL = os.environ.get("HUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default="sqlite", choices=["sqlite", "postgres"], help="storage engine to test")


@pytest.fixture(scope="session")
def db_engine_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def db_template(db_engine_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate once per session: a template SQLite file, or a PostgreSQL database of this run's own.

    Each run creates (and finally drops) its own PostgreSQL database on the server HUB_TEST_POSTGRES
    names, so parallel runs on one server never touch each other's data.
    """
    if db_engine_name == "sqlite":
        path = tmp_path_factory.mktemp("template") / "hub.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        engine.dispose()
        yield str(path)
        return
    server = make_url(db.make_engine(PG_URL).url)
    name = f"hub_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database_url(engine_name: str, template: str, path: Path) -> str:
    """Return a migrated, empty database: a copy of the SQLite template, or the run's PostgreSQL truncated."""
    if engine_name == "sqlite":
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    engine = db.make_engine(template)
    tables = ", ".join(t.name for t in models.Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "INSERT INTO hub_state (id, clock_us, rules_version, name, contact, identity_id) "
                "VALUES (1, 0, 1, 'cti-hub', '', '')"
            )
        )
    engine.dispose()
    return template


@pytest.fixture
def database_url(db_engine_name: str, db_template: str, tmp_path: Path) -> str:
    """A migrated, empty database for one test."""
    return fresh_database_url(db_engine_name, db_template, tmp_path / "hub.db")


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


@pytest.fixture
def app(make_app):
    """The hub's Flask app on this test's database (a module may override it)."""
    return make_app()


@pytest.fixture
def hub(app):
    return app.extensions["cti_hub"]


@pytest.fixture
def live(make_app, settings, tmp_path):
    """The demo sharing file served by `cti-hub serve` (gunicorn); yields (base url, keys, collection ids)."""
    yield from serve_demo(make_app, settings, tmp_path)


@pytest.fixture
def empty_database(db_engine_name: str, tmp_path: Path) -> Iterator[str]:
    """A new database with no tables at all (not migrated)."""
    if db_engine_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server = make_url(db.make_engine(PG_URL).url)
    name = f"hub_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def admin(app, world):
    """A client logged in as alice, the panel's admin; the module's ``world`` creates the panel accounts."""
    return logged_in(app)


@pytest.fixture
def auditor(app, world):
    """A client logged in as audrey, the panel's auditor; the module's ``world`` creates the panel accounts."""
    return logged_in(app, "audrey")
