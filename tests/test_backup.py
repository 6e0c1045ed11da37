"""`cti-hub backup` / `cti-hub restore`: a round trip keeps every object, status, ledger entry and key working."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hub import ledger
from hub.cli import main
from hub.cli.ops import verify_chain
from tests import factories as f
from tests.worlds import small_world


def api_state(app, world: dict, status_id: str) -> dict:
    """What partners see through the API with their old keys."""
    cisa = f.Client(app.test_client(), world["keys"]["cisa"])
    krcert = f.Client(app.test_client(), world["keys"]["krcert"])
    status = krcert.get(f"/dprk/status/{status_id}/")
    return {
        "objects": [o["id"] for o in cisa.get(world["url"], {"match[version]": "all"}).get_json()["objects"]],
        "status": (status.status_code, status.get_json()),
    }


def ledger_state(app) -> dict:
    """What an auditor sees: who received the object, and the audit chain."""
    hub = app.extensions["cti_hub"]
    with hub.session(write=False) as s:
        receipts = ledger.who_received(s, hub.snapshot(s), f.indicator(1)["id"])
        chain = verify_chain(s)
    return {
        "receipts": [(r.partner, r.key_id, r.at_us, r.version, r.rules_version) for r in receipts],
        "chain": (chain.problem, chain.events, chain.head),
    }


def test_backup_then_restore_into_an_empty_database_keeps_everything_working(
    make_app, settings, empty_database, tmp_path
):
    app = make_app()
    world = small_world(app.extensions["cti_hub"])
    krcert = f.Client(app.test_client(), world["keys"]["krcert"])
    posted = krcert.post(world["url"], [f.indicator(n) for n in range(1, 6)])
    krcert.post(world["url"], [f.indicator(1, modified="2024-06-01T00:00:00.000Z")])
    f.Client(app.test_client(), world["keys"]["cisa"]).get(world["url"])
    api_before = api_state(app, world, posted.get_json()["id"])
    ledger_before = ledger_state(app)
    assert len(api_before["objects"]) == 6 and api_before["status"][0] == 200
    assert len(ledger_before["receipts"]) == 3 and ledger_before["chain"][0] is None

    runner = CliRunner()
    backup_file = tmp_path / "hub.backup"
    done = runner.invoke(main, ["backup", str(backup_file)], env=f.cli_env(settings["database_url"], tmp_path))
    assert done.exit_code == 0, done.output
    assert f"backup written to {backup_file}" in done.output
    restored = runner.invoke(main, ["restore", str(backup_file)], env=f.cli_env(empty_database, tmp_path))
    assert restored.exit_code == 0, restored.output

    again = make_app(database_url=empty_database)
    assert ledger_state(again) == ledger_before
    assert api_state(again, world, posted.get_json()["id"]) == api_before
    # The restored hub keeps working: old keys publish and poll, and new pages reach the ledger.
    new = f.Client(again.test_client(), world["keys"]["krcert"]).post(world["url"], [f.indicator(9)])
    assert new.status_code == 202 and new.get_json()["success_count"] == 1
    page = f.Client(again.test_client(), world["keys"]["mycert"]).get(world["url"])
    assert f.indicator(9)["id"] in [o["id"] for o in page.get_json()["objects"]]
    hub = again.extensions["cti_hub"]
    with hub.session(write=False) as s:
        assert "mycert" in [r.partner for r in ledger.who_received(s, hub.snapshot(s), f.indicator(9)["id"])]
        assert verify_chain(s).problem is None


def test_restore_refuses_a_database_that_is_not_empty(settings, tmp_path, make_app):
    make_app()
    runner = CliRunner()
    env = f.cli_env(settings["database_url"], tmp_path)
    backup_file = tmp_path / "hub.backup"
    assert runner.invoke(main, ["backup", str(backup_file)], env=env).exit_code == 0
    again = runner.invoke(main, ["backup", str(backup_file)], env=env)
    assert again.exit_code == 1 and "already exists; choose a new file" in again.output
    refused = runner.invoke(main, ["restore", str(backup_file)], env=env)
    assert refused.exit_code == 1
    assert "is not empty; restore only into a new, empty database" in refused.output


def test_restore_refuses_a_file_that_is_not_a_backup_for_this_engine(db_engine_name, empty_database, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    out = CliRunner().invoke(main, ["restore", str(junk)], env=f.cli_env(empty_database, tmp_path))
    assert out.exit_code == 1
    expected = "is not a SQLite backup" if db_engine_name == "sqlite" else "is not a pg_dump custom-format backup"
    assert expected in out.output


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_backup_needs_a_file_database(url, tmp_path):
    out = CliRunner().invoke(main, ["backup", str(tmp_path / "x")], env=f.cli_env(url, tmp_path))
    assert out.exit_code == 1 and "need a file database" in out.output
