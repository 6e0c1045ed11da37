"""Upgrades from every older schema, with data in it: the hub keeps working on what it held.

The test walks whatever revisions the migration directory holds: for each one that is not already
the newest schema, it migrates an empty database to exactly that revision, fills it in raw SQL shaped
like that revision's tables (as the hub of that time would have written it), runs `cti-hub db upgrade`
twice and checks that keys, sharing, statuses, the audit chain, the ledger and /readyz all work.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from hub import auth, create_app, db, stix
from hub.policy import TLP
from hub.store import auditlog
from tests import factories as f
from tests.live import ROOT

pytestmark = pytest.mark.slow

PEPPER = "upgrade-test-pepper"
SECRETS = {slug: f"{auth.SECRET_PREFIX}{slug}-{'x' * 40}" for slug in ("krcert", "cisa", "mycert")}
KEY_IDS = {"krcert": "k00000000000a", "cisa": "k00000000000b", "mycert": "k00000000000c"}
NS = uuid.UUID("0b6f0d38-3a5e-4a53-9b43-6a1c8f0e2a77")
AMBER_REF = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"  # TLP 1.0 amber
COLLECTION = str(uuid.uuid5(NS, "shared"))
STATUS = str(uuid.uuid5(NS, "status"))
T0 = 1_714_521_600_000_000  # 2024-05-01T00:00:00Z in microseconds


def _script() -> ScriptDirectory:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db.MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def _older_schemas() -> list[str]:
    """Every revision whose schema (it and its ancestors, nothing else) is older than all heads together."""
    script = _script()
    everything = {r.revision for r in script.walk_revisions()}
    out = []
    for rev in reversed(list(script.walk_revisions())):  # oldest first
        applied = {r.revision for r in script.iterate_revisions(rev.revision, "base")}
        if applied != everything:
            out.append(rev.revision)
    return out


def _indicator(n: int, modified: str, marking: str | None = None) -> dict:
    obj = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(NS, str(n))}",
        "created": "2024-05-01T00:00:00.000Z",
        "modified": modified,
        "name": f"Andariel C2 {n}",
        "pattern": f"[ipv4-addr:value = '203.0.113.{n}']",
        "pattern_type": "stix",
        "valid_from": "2024-05-01T00:00:00Z",
    }
    if marking:
        obj["object_marking_refs"] = [marking]
    return obj


GREEN_V1 = _indicator(1, "2024-05-01T00:00:00.000Z")
GREEN_V2 = _indicator(1, "2024-05-02T00:00:00.000Z")
AMBER_OBJ = _indicator(2, "2024-05-01T00:00:00.000Z", AMBER_REF)
# A marking that states TLP:AMBER under its own id (as OpenCTI exports it), stored by older hubs as a
# plain statement, so that the object relying on it went out at the collection's GREEN default.
STATED = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": f"marking-definition--{uuid.uuid5(NS, 'st')}",
    "created": "2024-05-01T00:00:00.000Z",
    "name": "TLP:AMBER",
    "definition_type": "statement",
    "definition": {"statement": "TLP:AMBER"},
}
STATED_OBJ = _indicator(4, "2024-05-01T00:00:00.000Z", STATED["id"])


def _rows(stated_tlp: bool) -> dict[str, list[dict]]:
    """The data, table by table, with every column any revision had; each insert keeps the ones it has.

    ``stated_tlp``: the schema has 0011_stated_tlp, so the hub that wrote the data already read the
    stated marking as TLP:AMBER and stored the object relying on it at AMBER.
    """
    stated_level = TLP.AMBER if stated_tlp else TLP.GREEN
    identity = {slug: f"identity--{uuid.uuid5(NS, slug)}" for slug in ("hub", "krcert", "cisa", "mycert")}
    partners = [
        (1, "hub", "XX", "hub", TLP.RED),
        (2, "krcert", "KR", "cert", TLP.RED),
        (3, "cisa", "US", "government", TLP.RED),
        (4, "mycert", "MY", "cert", TLP.GREEN),
    ]
    versions = [(GREEN_V1, 1, T0 + 1, TLP.GREEN), (AMBER_OBJ, 2, T0 + 2, TLP.AMBER), (GREEN_V2, 3, T0 + 3, TLP.GREEN)]
    events = [("cli", "partner.create", "krcert"), ("cli", "key.create", "krcert"), ("cli", "key.create", "cisa")]
    return {
        "partners": [
            {
                "id": pk,
                "slug": slug,
                "name": slug.upper(),
                "country": country,
                "sector": "",
                "kind": kind,
                "clearance": int(tlp),
                "active": True,
                "identity_id": identity[slug],
                "created_us": T0,
            }
            for pk, slug, country, kind, tlp in partners
        ],
        "trust_groups": [
            {
                "id": 1,
                "slug": "asean",
                "name": "ASEAN",
                "countries": "",
                "marking_id": f"marking-definition--{uuid.uuid5(NS, 'asean')}",
            }
        ],
        "trust_group_members": [{"group_id": 1, "partner_id": 4}],
        "api_roots": [{"id": 1, "slug": "dprk", "title": "DPRK", "description": "", "max_content_length": 10_000_000}],
        "collections": [
            {
                "id": 1,
                "uuid": COLLECTION,
                "api_root_id": 1,
                "alias": "shared",
                "title": "Shared",
                "description": "",
                "max_tlp": int(TLP.RED),
                "default_tlp": int(TLP.GREEN),
                "types": "",
                "readers": "partner:cisa,group:asean,partner:krcert",
                "writers": "partner:krcert",
                "is_reference": False,
            }
        ],
        "markings": [
            {
                "id": AMBER_REF,
                "kind": "tlp",
                "tlp": int(TLP.AMBER),
                "share_partners": "",
                "share_groups": "",
                "share_countries": "",
                "exclude_partners": "",
                "no_federation": False,
                "raw": "{}",
                "originator_id": 1,
            },
            {
                "id": STATED["id"],
                "kind": "tlp" if stated_tlp else "statement",
                "tlp": int(TLP.AMBER) if stated_tlp else None,
                "share_partners": "",
                "share_groups": "",
                "share_countries": "",
                "exclude_partners": "",
                "no_federation": False,
                "raw": orjson.dumps(STATED).decode(),
                "originator_id": 2,
            },
        ],
        "api_keys": [
            {
                "id": pk,
                "key_id": KEY_IDS[slug],
                "partner_id": pk,
                "secret_hash": auth.hash_secret(PEPPER, SECRETS[slug]),
                "label": "",
                "read_only": slug != "krcert",
                "cidrs": "",
                "created_us": T0,
                "expires_us": None,
                "revoked_us": None,
                "last_used_us": None,
            }
            for pk, slug in ((2, "krcert"), (3, "cisa"), (4, "mycert"))
        ],
        "object_versions": [
            {
                "pk": pk,
                "collection_id": 1,
                "stix_id": o["id"],
                "type": "indicator",
                "version": o["modified"],
                "version_us": stix.parse_timestamp(o["modified"]),
                "spec_version": "2.1",
                "date_added": added,
                "originator_id": 2,
                "tlp": int(tlp),
                "restriction_set_id": None,
                "unknown_markings": False,
                "raw": orjson.dumps(o).decode(),
            }
            for o, pk, added, tlp in [*versions, (STATED_OBJ, 4, T0 + 4, stated_level)]
        ],
        "statuses": [
            {
                "id": STATUS,
                "api_root_id": 1,
                "collection_id": 1,
                "partner_id": 2,
                "status": "complete",
                "request_us": T0,
                "total_count": 3,
                "success_count": 3,
                "failure_count": 0,
                "pending_count": 0,
                "successes": orjson.dumps([{"id": o["id"], "version": o["modified"]} for o, *_ in versions]).decode(),
                "failures": "[]",
            }
        ],
        "admin_users": [
            {
                "id": 1,
                "username": "root",
                "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$x$y",
                "role": "admin",
                "created_us": T0,
            }
        ],
        "login_failures": [{"source": "192.0.2.9", "window_us": T0, "count": 2}],
        "audit_events": [
            {
                "id": n + 1,
                "at_us": T0 + n,
                "actor": actor,
                "action": action,
                "target": target,
                "source": "",
                "detail": "{}",
            }
            for n, (actor, action, target) in enumerate(events)
        ],
        "deliveries": [
            {
                "id": 1,
                "at_us": T0 + 10,
                "partner_id": 3,
                "partner_slug": "cisa",
                "key_id": KEY_IDS["cisa"],
                "endpoint": "objects",
                "collection_id": 1,
                "filters": '{"versions":["last"]}',
                "rules_version": 2,
                "first_added": T0 + 2,
                "last_added": T0 + 3,
                "count": 2,
            }
        ],
        "delivery_views": [
            {
                "partner_id": 3,
                "collection_id": 1,
                "rules_version": 2,
                "read_filter": orjson.dumps(
                    {
                        "readable": True,
                        "originator": "cisa",
                        "max_tlp": int(TLP.RED),
                        "types": [],
                        "admitted_sets": [],
                        "red_sets": [],
                    }
                ).decode(),
            }
        ],
        "feed_sources": [
            {
                "name": "peer",
                "kind": "taxii",
                "url": "https://peer.example/taxii2/",
                "partner_slug": "krcert",
                "collection_uuid": COLLECTION,
                "settings": "{}",
                "cursor": "",
                "last_run_us": None,
                "last_summary": "",
            }
        ],
    }


def populate(engine: sa.Engine, revision: str) -> set[str]:
    """Insert the data into the tables this revision has, with the columns they have; return the tables."""
    tables = set(sa.inspect(engine).get_table_names())
    applied = {r.revision for r in _script().iterate_revisions(revision, "base")}
    data = _rows(stated_tlp="0011_stated_tlp" in applied)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE hub_state SET name = 'Old hub', identity_id = :i, clock_us = :c, rules_version = 2"),
            {"i": f"identity--{uuid.uuid5(NS, 'hub')}", "c": T0 + 4},
        )
        for table, rows in data.items():
            if table not in tables:
                continue
            columns = {c["name"] for c in sa.inspect(conn).get_columns(table)}
            if table == "audit_events" and "hash" in columns:
                rows = _chained(rows, conn, "audit_head" in tables)
            for row in rows:
                row = {k: v for k, v in row.items() if k in columns}
                names = ", ".join(row)
                conn.execute(sa.text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + k for k in row)})"), row)
        if engine.dialect.name == "postgresql":  # as the hub's own inserts would have left the sequences
            for table, column in (
                ("partners", "id"),
                ("trust_groups", "id"),
                ("api_roots", "id"),
                ("collections", "id"),
                ("api_keys", "id"),
                ("object_versions", "pk"),
                ("admin_users", "id"),
                ("audit_events", "id"),
                ("deliveries", "id"),
            ):
                if table in tables:
                    conn.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                            f"(SELECT max({column}) FROM {table}))"
                        )
                    )
    return tables


def _chained(rows: list[dict], conn: sa.Connection, has_head: bool) -> list[dict]:
    """Link the events as a hub with the hash chain wrote them, and move the chain head."""
    prev, out = "", []
    for row in rows:
        digest = auditlog.audit_hash(prev, row)
        out.append({**row, "prev_hash": prev, "hash": digest})
        prev = digest
    if has_head:
        conn.execute(sa.text("DELETE FROM audit_head"))
        conn.execute(
            sa.text("INSERT INTO audit_head (id, last_event_id, hash) VALUES (1, :n, :h)"),
            {"n": out[-1]["id"], "h": prev},
        )
    return out


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CTI_HUB_DATABASE_URL": url, "CTI_HUB_SECRET_KEY": PEPPER}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _ids(response) -> dict[str, str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {o["id"]: o["modified"] for o in response.get_json().get("objects", [])}


@pytest.mark.parametrize("revision", _older_schemas())
def test_upgrade_with_data_keeps_the_hub_working(revision, empty_database, tmp_path):
    engine = db.make_engine(empty_database)
    command.upgrade(db.alembic_config(engine), revision)
    tables = populate(engine, revision)
    engine.dispose()

    for _ in range(2):  # idempotent: the second run finds nothing to do
        done = cli(empty_database, "db", "upgrade")
        assert done.returncode == 0, done.stderr
    app = create_app({"database_url": empty_database, "data_dir": str(tmp_path), "secret_key": PEPPER})
    hub = app.extensions["cti_hub"]
    try:
        assert db.is_current(hub.engine)
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        url = f"/dprk/collections/{COLLECTION}/objects/"
        # Keys hashed by the older hub still authenticate; each reader gets what its rules release.
        assert _ids(f.Client(client, SECRETS["cisa"]).get(url)) == {
            GREEN_V2["id"]: GREEN_V2["modified"],
            AMBER_OBJ["id"]: AMBER_OBJ["modified"],
            STATED_OBJ["id"]: STATED_OBJ["modified"],
        }
        assert _ids(f.Client(client, SECRETS["mycert"]).get(url)) == {GREEN_V2["id"]: GREEN_V2["modified"]}
        assert f.Client(client, "not-a-key").get(url).status_code == 401
        publisher = f.Client(client, SECRETS["krcert"])
        status = publisher.get(f"/dprk/status/{STATUS}/")
        assert status.status_code == 200 and status.get_json()["success_count"] == 3
        versions = publisher.get(f"/dprk/collections/{COLLECTION}/objects/{GREEN_V1['id']}/versions/")
        assert versions.get_json()["versions"] == [GREEN_V1["modified"], GREEN_V2["modified"]]
        # New writes continue the old data: a new version, after every date_added handed out before.
        posted = publisher.post(url, [_indicator(3, "2024-05-03T00:00:00.000Z")])
        assert posted.status_code == 202 and posted.get_json()["success_count"] == 1
        after = {"added_after": stix.format_timestamp(T0 + 4)}
        assert set(_ids(f.Client(client, SECRETS["cisa"]).get(url, after))) == {
            _indicator(3, "2024-05-03T00:00:00.000Z")["id"]
        }
    finally:
        hub.engine.dispose()

    verified = cli(empty_database, "audit", "verify")
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stdout + verified.stderr
    who = cli(empty_database, "ledger", "who-received", AMBER_OBJ["id"])
    assert who.returncode == 0, who.stderr
    assert "cisa" in who.stdout and "mycert" not in who.stdout
    if "deliveries" in tables:  # the delivery recorded before the upgrade is still answered for
        assert KEY_IDS["cisa"] in who.stdout and "2024-05-01T00:00:00.000010Z" in who.stdout


def test_concurrent_upgrades_both_succeed(empty_database):
    env = {**os.environ, "CTI_HUB_DATABASE_URL": empty_database, "CTI_HUB_SECRET_KEY": PEPPER}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "db", "upgrade"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in results), results
    engine = db.make_engine(empty_database)
    try:
        assert db.is_current(engine)
    finally:
        engine.dispose()


def _connect_at(url: str, start: float) -> str:
    """In a pool process: open the database at ``start`` (a time.time()), return its journal mode or the error."""
    engine = db.make_engine(url)
    try:
        while time.time() < start:
            pass
        with engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    except sa.exc.OperationalError as error:
        return str(error.orig)
    finally:
        engine.dispose()


def test_processes_opening_a_new_sqlite_file_together_all_connect(tmp_path):
    """SQLite refuses one of two simultaneous switches to WAL at once, busy timeout or not: the hub retries.

    Without the retry about one round in six has a process failing with "database is locked".
    """
    with multiprocessing.get_context("fork").Pool(4) as pool:
        for attempt in range(40):
            url = f"sqlite:///{tmp_path / f'new-{attempt}.db'}"
            got = pool.starmap(_connect_at, [(url, time.time() + 0.05)] * 4)
            assert got == ["wal"] * 4, (attempt, got)
