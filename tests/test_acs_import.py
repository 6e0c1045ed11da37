"""AIS content comes in with its ACS 3.0 markings: from a STIX file, and from a TAXII server that requires a
client certificate (mutual TLS, as CISA's AIS server does), and the markings still decide who receives it."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner

from hub import acs, create_app, db, ingest
from hub.cli import main
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import snapshots
from tests import factories as f
from tests import tls
from tests.live import serve_in_thread
from tests.worlds import feeds_world

GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
ACS_EXTENSION = {
    "extension_type": "property-extension",
    "identifier": "isa:guide.19001.ACS3-e0c28f68-5570-434a-9764-3e8498f0a59a",
    "create_date_time": "2021-08-14T01:08:08.432065Z",
    "responsible_entity_custodian": "USA.DHS.US-CERT",
    "policy_reference": "urn:isa:policy:acs:ns:v3.0?privdefault=deny&sharedefault=deny",
    "access_privilege": [
        {
            "privilege_action": "CISAUSES",
            "privilege_scope": {"permitted_nationalities": ["ALL"]},
            "rule_effect": "permit",
        }
    ],
    "control_set": {"classification": "U", "formal_determination": ["FOUO", "AIS"]},
}


def acs_marking(nationalities: list[str]) -> dict:
    ext = copy.deepcopy(ACS_EXTENSION)
    ext["access_privilege"][0]["privilege_scope"]["permitted_nationalities"] = nationalities
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": f"marking-definition--{uuid.uuid4()}",
        "created": "2021-08-14T01:08:09.163Z",
        "extensions": {acs.ACS_EXTENSION_ID: ext},
    }


def ais_content() -> tuple[list[dict], dict, dict]:
    """Two AIS indicators: one any nationality may use, one for Korean partners only."""
    everyone, korea = acs_marking(["ALL"]), acs_marking(["KOR"])
    open_ind = f.indicator(8501, markings=[GREEN, everyone["id"]])
    korean = f.indicator(8502, markings=[GREEN, korea["id"]])
    return [everyone, korea, open_ind, korean], open_ind, korean


@pytest.fixture
def hub(make_app) -> Hub:
    return feeds_world(make_app().extensions["cti_hub"])


def test_a_stix_file_keeps_its_acs_markings(hub, app, tmp_path):
    objects, open_ind, korean = ais_content()
    path = tmp_path / "ais.json"
    path.write_bytes(orjson.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
    result = CliRunner().invoke(
        main, ["feeds", "import", "stix", str(path), "--partner", "krcert", "--collection", "shared"], obj=hub
    )
    assert result.exit_code == 0, result.output
    assert "4 accepted, 0 unchanged, 0 refused" in result.output
    assert_enforced(app, hub, objects, open_ind, korean)


def assert_enforced(app, hub: Hub, objects: list[dict], open_ind: dict, korean: dict) -> None:  # type: ignore[no-untyped-def]
    """The markings are stored byte for byte, and a Malaysian partner receives the open indicator only."""
    with hub.session() as s:
        shared = next(c.uuid for c in hub.snapshot(s).collections.values() if c.alias == "shared")
    url = f"/dprk/collections/{shared}/objects/"
    mycert = f.Client(app.test_client(), f.key_for(hub, "mycert"))
    krcert = f.Client(app.test_client(), f.key_for(hub, "krcert"))
    got = {o["id"]: o for o in mycert.get(url).get_json().get("objects", [])}
    assert open_ind["id"] in got and korean["id"] not in got
    mine = {o["id"]: o for o in krcert.get(url).get_json()["objects"]}
    for obj in objects:
        assert mine[obj["id"]] == obj


# --------------------------------------------------------------------- a TAXII server with mutual TLS


@pytest.fixture
def pki(tmp_path) -> dict[str, tls.Issued]:
    ca = tls.make_ca(tmp_path, "AIS CA")
    rogue = tls.make_ca(tmp_path, "Rogue CA")
    return {
        "ca": ca,
        "server": tls.issue(ca, tmp_path, "ais-server", server=True),
        "client": tls.issue(ca, tmp_path, "krcert-client"),
        "expired": tls.issue(ca, tmp_path, "krcert-expired", expired=True),
        "unsigned": tls.issue(rogue, tmp_path, "krcert-rogue"),
    }


@pytest.fixture
def ais_server(empty_database, tmp_path, pki) -> Iterator[tuple[str, str]]:
    """Another hub (its own database) playing the AIS server: it serves AIS content and demands a client certificate."""
    engine = db.make_engine(empty_database)
    db.upgrade(engine)
    engine.dispose()
    source = create_app(
        {
            "database_url": empty_database,
            "data_dir": str(tmp_path / "ais"),
            "secret_key": "ais-secret",
        }
    )
    ais = source.extensions["cti_hub"]
    with ais.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "ais", "US", TLP.RED)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_collection(s, f.add_root(s, "dprk"), "indicators", max_tlp=TLP.AMBER)
        snapshots.bump_rules(s)
    objects, _, _ = ais_content()
    with ais.session(write=False) as s:
        snap = ais.snapshot(s)
        collection = next(c.uuid for c in snap.collections.values() if c.alias == "indicators")
        pk = snap.by_slug["ais"]
    assert not ingest.ingest_envelope(ais, pk, collection, objects).failures
    token = f.key_for(ais, "krcert")
    for base in serve_in_thread(source, tls.server_context(pki["ca"], pki["server"])):
        yield f"{base}/dprk/collections/{collection}/", token
    ais.engine.dispose()


def pull(hub: Hub, url: str, pki: dict[str, tls.Issued], client: str | None, monkeypatch) -> object:  # type: ignore[no-untyped-def]
    args = ["feeds", "import", "taxii", url, "--partner", "krcert", "--collection", "shared"]
    args += ["--token-env", "AIS_TOKEN", "--ca-bundle", str(pki["ca"].cert), "--source-name", f"ais-{client}"]
    if client is not None:
        args += ["--cert", str(pki[client].cert), "--key", str(pki[client].key)]
    return CliRunner().invoke(main, args, obj=hub)


def test_a_taxii_source_requiring_a_client_certificate_is_pulled_with_one(hub, app, ais_server, pki, monkeypatch):
    url, token = ais_server
    monkeypatch.setenv("AIS_TOKEN", token)
    result = pull(hub, url, pki, "client", monkeypatch)
    assert result.exit_code == 0, result.output
    assert "4 accepted, 0 unchanged, 0 refused" in result.output
    objects, open_ind, korean = ais_content()
    # the ids are fixed per number, the marking ids are new per call: compare the indicators by id only
    with hub.session(write=False) as s:
        shared = next(c.uuid for c in hub.snapshot(s).collections.values() if c.alias == "shared")
    mycert = f.Client(app.test_client(), f.key_for(hub, "mycert"))
    got = {o["id"] for o in mycert.get(f"/dprk/collections/{shared}/objects/").get_json().get("objects", [])}
    assert open_ind["id"] in got and korean["id"] not in got


@pytest.mark.parametrize("client", [None, "expired", "unsigned"])
def test_a_wrong_missing_or_expired_certificate_is_refused(hub, ais_server, pki, monkeypatch, client):
    url, token = ais_server
    monkeypatch.setenv("AIS_TOKEN", token)
    result = pull(hub, url, pki, client, monkeypatch)
    assert result.exit_code == 1, result.output
    assert "failed" in result.output.lower() or "error" in result.output.lower()
    assert "Traceback" not in result.output


def test_the_server_certificate_is_verified_against_the_bundle(hub, ais_server, pki, monkeypatch, tmp_path):
    url, token = ais_server
    monkeypatch.setenv("AIS_TOKEN", token)
    other = tls.make_ca(tmp_path, "Other CA")
    args = ["feeds", "import", "taxii", url, "--partner", "krcert", "--collection", "shared"]
    args += ["--token-env", "AIS_TOKEN", "--ca-bundle", str(other.cert)]
    args += ["--cert", str(pki["client"].cert), "--key", str(pki["client"].key)]
    result = CliRunner().invoke(main, args, obj=hub)
    assert result.exit_code == 1 and "certificate verify failed" in result.output, result.output
