"""Two hubs on loopback, each with its own database: B imports A's collection as a peer hub."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hub import db, ingest
from hub import models as m
from hub.cli import main
from hub.ids import HUB_NAMESPACE, SHARING_EXTENSION_ID
from hub.policy import TLP
from tests import factories as f
from tests.live import ROOT, free_port, wait_ready

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def build(hub, peer: str) -> str:
    """A hub with krcert, a peer hub partner and one open collection; return the collection id."""
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, peer, "", TLP.RED, kind="hub")
        coll = f.add_collection(s, f.add_root(s, "dprk"), "shared", max_tlp=TLP.RED)
        return coll.uuid


@pytest.fixture
def hub_a(make_app, settings, tmp_path):
    """Hub A served by `cti-hub serve`, with krcert's objects at every level of restriction."""
    app = make_app()
    hub = app.extensions["cti_hub"]
    collection = build(hub, "hub-b")
    no_fed = f.sharing_marking(f"marking-definition--{uuid.uuid4()}", countries=["KR", "SG"])
    no_fed["extensions"][SHARING_EXTENSION_ID]["no_federation"] = True
    names_b = f.sharing_marking(f"marking-definition--{uuid.uuid4()}", partners=["hub-b"])
    kr_identity = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'krcert')}"
    objs = {
        "green": f.indicator(1, markings=[GREEN], created_by=kr_identity),
        "amber": f.indicator(2, markings=[AMBER], created_by=kr_identity),
        "strict": f.indicator(3, markings=[STRICT]),
        "red": f.indicator(4, markings=[RED, names_b["id"]]),
        "no_fed": f.indicator(5, markings=[GREEN, no_fed["id"]]),
    }
    with hub.session() as s:
        pk = hub.snapshot(s).by_slug["krcert"]
    result = ingest.ingest_envelope(hub, pk, collection, [no_fed, names_b, *objs.values()])
    assert not result.failures, result.failures
    key = f.key_for(hub, "hub-b")
    port = free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path / "a"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield {
            "hub": hub,
            "url": f"{base}/dprk/collections/{collection}/",
            "key": key,
            "objects": objs,
            "collection": collection,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def hub_b(make_app, tmp_path):
    """Hub B on a SQLite database of its own."""
    url = f"sqlite:///{tmp_path / 'b.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    app = make_app(database_url=url, data_dir=str(tmp_path / "b"))
    hub = app.extensions["cti_hub"]
    return {"hub": hub, "collection": build(hub, "hub-a")}


def stored_ids(hub, collection: str) -> set[str]:
    with hub.session(write=False) as s:
        return set(
            s.scalars(
                select(m.ObjectVersion.stix_id)
                .join(m.Collection)
                .where(m.Collection.uuid == collection, m.ObjectVersion.type == "indicator")
            )
        )


def test_peer_hub_receives_what_federation_allows_and_loops_add_nothing(hub_a, hub_b, monkeypatch):
    monkeypatch.setenv("HUB_A_KEY", hub_a["key"])
    runner = CliRunner()
    args = [
        "feeds",
        "import",
        "taxii",
        hub_a["url"],
        "--partner",
        "hub-a",
        "--collection",
        "shared",
        "--token-env",
        "HUB_A_KEY",
        "--source-name",
        "hub-a",
    ]
    result = runner.invoke(main, args, obj=hub_b["hub"])
    assert result.exit_code == 0, result.output
    objs = hub_a["objects"]
    assert stored_ids(hub_b["hub"], hub_b["collection"]) == {objs["green"]["id"], objs["amber"]["id"]}
    with hub_b["hub"].session(write=False) as s:
        raws = s.scalars(select(m.ObjectVersion.raw).where(m.ObjectVersion.stix_id == objs["amber"]["id"])).all()
    assert '"created_by_ref":"identity--' in raws[0]  # the original creator is kept

    # Running the import again adds nothing (the cursor moved on) ...
    again = runner.invoke(main, ["feeds", "sync", "hub-a"], obj=hub_b["hub"])
    assert again.exit_code == 0 and "0 accepted" in again.output, again.output
    # ... and the loop back (B's copies reaching A through A's peer hub-b) stores nothing twice.
    with hub_b["hub"].session(write=False) as s:
        copies = [
            orjson.loads(r)
            for r in s.scalars(
                select(m.ObjectVersion.raw).join(m.Collection).where(m.Collection.uuid == hub_b["collection"])
            )
        ]
    with hub_a["hub"].session(write=False) as s:
        before = s.scalar(select(func.count()).select_from(m.ObjectVersion))
        peer_pk = hub_a["hub"].snapshot(s).by_slug["hub-b"]
    result = ingest.ingest_envelope(hub_a["hub"], peer_pk, hub_a["collection"], copies)
    assert not result.failures, result.failures
    with hub_a["hub"].session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.ObjectVersion)) == before
