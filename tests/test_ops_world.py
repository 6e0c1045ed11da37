"""Fixtures shared by the operations tests: a small sharing world and brand-new empty databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub import db, services
from hub.policy import TLP
from tests import factories as f
from tests.conftest import PG_URL

AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"


def build_world(hub: services.Hub) -> dict:
    """krcert publishes; cisa (RED) and mycert (GREEN) read the shared collection."""
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        root = f.add_root(s, "dprk")
        shared = f.add_collection(s, root, "shared", max_tlp=TLP.RED).uuid
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[],
                         reference=True)
        services.publish_reference(s)
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "mycert")}
    return {"shared": shared, "keys": keys, "url": f"/dprk/collections/{shared}/objects/"}


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


def test_build_world_gives_each_reader_a_working_key(make_app):
    app = make_app()
    world = build_world(app.extensions["cti_hub"])
    for slug in ("krcert", "cisa", "mycert"):
        r = f.Client(app.test_client(), world["keys"][slug]).get(world["url"])
        assert r.status_code == 200, slug
