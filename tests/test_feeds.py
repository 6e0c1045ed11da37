"""Import connectors on the real files in ../shared/data: every object in or refused with a reason."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from feeds.base import FeedError, resolve_target
from feeds.iocs import classify, pattern_for, refang
from feeds.stix_bundle import upgrade
from hub import ingest, stix
from hub import models as m
from hub.cli import main
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import reads
from tests import factories as f
from tests.conftest import DATA
from tests.connectors import run, stored
from tests.live import serve_in_thread
from tests.worlds import feeds_world

STIX_FILES = sorted((DATA / "ioc-stix").glob("*.json"))
IOC_FILES = sorted((DATA / "iocs").iterdir())
KINDS = {".csv": "csv", ".txt": "text", ".ndjson": "ecs"}
WHITE = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
ATTACK_STATEMENT = "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"
LAZARUS = "intrusion-set--c93fccb1-e8e8-42cf-ae33-2ad1d183913a"


@pytest.fixture
def hub(make_app) -> Hub:
    return feeds_world(make_app().extensions["cti_hub"])


def bundle_count(path: Path) -> int:
    return len(orjson.loads(path.read_bytes())["objects"])


# --------------------------------------------------------------------- stix


def test_every_vendor_bundle_is_imported_or_refused_per_object_and_reimport_adds_nothing(hub):
    first = {}
    for path in STIX_FILES:
        outcome = run(hub, "stix", path)
        mapped = sum(outcome.mapped.values())
        assert outcome.accepted + outcome.unchanged + outcome.refused_total + mapped == bundle_count(path), path.name
        assert all(reason for _, reason in outcome.refusals)
        first[path.name] = outcome
    # The Unit 42 playbooks mark attack-patterns with ATT&CK's statement marking, defined only in ATT&CK.
    konni = first["unit42-playbook-crooked-pisces-konni.stix20.json"]
    assert set(konni.refused) == {f"unknown marking {ATTACK_STATEMENT}"}
    total_before = len(stored(hub))
    for path in STIX_FILES:
        again = run(hub, "stix", path)
        assert again.accepted == 0, path.name
        assert again.refused == first[path.name].refused
    assert len(stored(hub)) == total_before


def test_unit42_refusals_resolve_once_attack_defines_the_marking(hub):
    path = DATA / "ioc-stix" / "unit42-playbook-crooked-pisces-konni.stix20.json"
    assert run(hub, "stix", path).refused_total == 21
    run(hub, "attack", DATA / "dprk-attack.json", partner="hub", collection="reference")
    again = run(hub, "stix", path)
    # The marking is known now; the playbook's copies of ATT&CK techniques that differ from MITRE's stay
    # refused, because only their originator (the hub, for ATT&CK) may add versions of them.
    assert again.accepted == 1 and f"unknown marking {ATTACK_STATEMENT}" not in again.refused
    assert set(again.refused) == {
        "only the originator may publish under this object id (new versions, copies in "
        "other collections, revocation or deletion)"
    }


def test_stix20_upgrade_follows_the_standard_and_keeps_the_original_in_the_audit(hub):
    path = DATA / "ioc-stix" / "unit42-playbook-moldypisces-apt37-reaper.stix20.json"
    run(hub, "stix", path)
    objs = stored(hub)
    indicator = next(o for o in objs.values() if o["type"] == "indicator")
    assert indicator["spec_version"] == "2.1" and indicator["pattern_type"] == "stix"
    assert indicator["indicator_types"] == ["malicious-activity"] and "labels" not in indicator
    malware = next(o for o in objs.values() if o["type"] == "malware")
    assert malware["is_family"] is True and malware.get("malware_types")
    assert not stix.validate(indicator) and not stix.validate(malware)
    with hub.session(write=False) as s:
        events = s.scalars(select(m.AuditEvent).where(m.AuditEvent.action == "feed.import.originals")).all()
    found = [orjson.loads(e.detail)["objects"].get(indicator["id"]) for e in events]
    detail = next(d for d in found if d is not None)
    assert detail["original"]["labels"] == ["malicious-activity"] and "spec_version" not in detail["original"]
    assert "upgraded from STIX 2.0" in detail["changes"]


def test_upgrade_keeps_misp_labels_and_markings_and_replaces_tlp1_definitions():
    talos = orjson.loads((DATA / "ioc-stix" / "talos-2022-09-lazarus-magicrat.stix20.json").read_bytes())["objects"]
    ind = next(o for o in talos if o["type"] == "indicator")
    new, _ = upgrade(ind)
    assert new["labels"] == ind["labels"] and "indicator_types" not in new
    assert new.get("object_marking_refs") == ind.get("object_marking_refs")
    assert new["created_by_ref"] == ind["created_by_ref"]
    marking = next(o for o in talos if o["type"] == "marking-definition")
    assert upgrade(marking)[0] == stix.TLP1_MARKINGS[marking["id"]]
    misp = next(o for o in talos if o["type"] == "x-misp-attribute")
    assert stix.validate(upgrade(misp)[0]) == []


def test_elastic_tlp_clear_on_white_id_is_mapped_in_lenient_mode_and_refused_in_strict(hub):
    path = DATA / "ioc-stix" / "elastic-rustbucket-bluenoroff.stix21.json"
    strict = run(hub, "stix", path, collection="krlist", strict=True)
    assert strict.refused_total == 1 and "TLP:CLEAR" in strict.refusals[0][1]
    lenient = run(hub, "stix", path)
    assert lenient.refused_total == 0 and sum(lenient.mapped.values()) == 1
    objs = stored(hub)
    assert all(o.get("name") != "TLP:CLEAR" for o in objs.values())
    assert all(WHITE in o["object_marking_refs"] for o in objs.values() if o["type"] == "indicator")


def test_tlp_is_applied_only_to_objects_without_one(hub):
    run(
        hub,
        "stix",
        DATA / "ioc-stix" / "talos-2025-10-famous-chollima-beavertail-ottercookie.stix20.json",
        tlp=TLP.AMBER,
    )
    run(hub, "stix", DATA / "ioc-stix" / "talos-2023-08-lazarus-quiterat.stix20.json", tlp=TLP.AMBER)
    amber = stix.TLP2_MARKINGS[TLP.AMBER]["id"]
    for obj in stored(hub).values():
        if obj["type"] == "marking-definition":
            continue
        refs = obj.get("object_marking_refs", [])
        assert (amber in refs) != (WHITE in refs), obj["id"]
    # mycert (clearance GREEN) sees the TLP:WHITE ones but none of the AMBER ones.
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        coll = next(c for c in snap.collections.values() if c.alias == "shared")
        pk = snap.by_slug["mycert"]
        rows, _ = reads.page(s, reads.VersionQuery(coll.pk, snap.read_filter(pk, coll), pk, limit=5000), ("raw",))
    assert rows and all(amber not in orjson.loads(r.raw).get("object_marking_refs", []) for r in rows)


def test_bundle_errors_are_one_clear_message(hub, tmp_path):
    for name, reason in (
        ("cti-python-stix2__sco-examples-bundle.json", "JSON array"),
        ("cti-stix-validator__v21__invalid_braces.json", "not JSON"),
    ):
        with pytest.raises(FeedError, match=reason):
            run(hub, "stix", DATA / "stix-examples" / "invalid" / name)
    with pytest.raises(FeedError, match="cannot read"):
        run(hub, "stix", tmp_path / "missing.json")
    with pytest.raises(FeedError, match="does not write"):
        resolve_target(hub, "mycert", "krlist", "dprk")
    with pytest.raises(FeedError, match="unknown collection"):
        resolve_target(hub, "krcert", "nope", "dprk")


def test_invalid_objects_are_refused_with_the_validator_reason(hub, tmp_path):
    bad = orjson.loads(
        (DATA / "stix-examples" / "invalid" / "cti-stix-validator__v21__invalid_timestamp.json").read_bytes()
    )
    path = tmp_path / "bundle.json"
    path.write_bytes(
        orjson.dumps(
            {
                "type": "bundle",
                "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                "objects": [bad, f.indicator(1), "junk"],
            }
        )
    )
    outcome = run(hub, "stix", path)
    assert (outcome.accepted, outcome.refused_total) == (1, 2)
    reasons = dict(outcome.refusals)
    assert "invalid STIX 2.1" in reasons[bad["id"]] and "modified" in reasons[bad["id"]]
    assert reasons["objects[2]"].startswith("not a STIX object")


@pytest.fixture
def http_data() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_import_from_url(hub, http_data):
    outcome = run(hub, "stix", f"{http_data}/ioc-stix/talos-2023-08-lazarus-quiterat.stix20.json")
    assert outcome.accepted == bundle_count(DATA / "ioc-stix" / "talos-2023-08-lazarus-quiterat.stix20.json")
    outcome = run(hub, "text", f"{http_data}/iocs/eset-scarcruft-samples.sha256.txt")
    assert outcome.accepted == 5
    with pytest.raises(FeedError, match="cannot fetch"):
        run(hub, "stix", f"{http_data}/nope.json")


# --------------------------------------------------------------------- attack


def test_attack_into_reference_as_the_hub_with_aliases(hub):
    path = DATA / "dprk-attack.json"
    first = run(hub, "attack", path, partner="hub", collection="reference")
    assert (first.accepted, first.refused_total) == (bundle_count(path), 0)
    again = run(hub, "attack", path, partner="hub", collection="reference")
    assert (again.accepted, again.unchanged) == (0, bundle_count(path))
    result = CliRunner().invoke(main, ["actors"], obj=hub)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("Lazarus Group"))
    assert "[G0032]" in line and "HIDDEN COBRA" in line and "Diamond Sleet" in line
    assert "Stolen Pencil [G0086] (revoked)" in result.output


def test_attack_stix20_source_upgrades_like_mitre(hub):
    path = DATA / "dprk-attack-stix20.json"
    outcome = run(hub, "attack", path, partner="hub", collection="reference")
    assert (outcome.accepted, outcome.refused_total) == (bundle_count(path), 0)
    mitre21 = {o["id"]: o for o in orjson.loads((DATA / "dprk-attack.json").read_bytes())["objects"]}
    ours = stored(hub, "reference")
    assert ours[LAZARUS] == mitre21[LAZARUS]
    malware = [o for o in mitre21.values() if o["type"] in ("malware", "tool")]
    same = sum(ours[o["id"]] == o for o in malware)
    assert same == len(malware)


# --------------------------------------------------------------------- csv / text


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        ("hxxp://evil[.]example[.]com/a", "", ("url", "http://evil.example.com/a")),
        ("198.51.100[.]7", "", ("ipv4-addr", "198.51.100.7")),
        ("2001:db8::1", "ip", ("ipv6-addr", "2001:db8::1")),
        ("Bad[.]Example.COM", "hostname", ("domain-name", "bad.example.com")),
        ("agent[@]example.org", "", ("email-addr", "agent@example.org")),
        (
            "586F30907C3849C363145BFDCDABE3E2E4688CBD5688FF968E984B201B474730",
            "",
            ("SHA-256", "586f30907c3849c363145bfdcdabe3e2e4688cbd5688ff968e984b201b474730"),
        ),
        ("67c27e2817d83786d95221ea4a02842847515f25", "sha1", ("SHA-1", "67c27e2817d83786d95221ea4a02842847515f25")),
        ("bfbe94391dc7e0eaa1e59ae6d6029393", "MD5", ("MD5", "bfbe94391dc7e0eaa1e59ae6d6029393")),
        ("bc1qa5wkgaew2dkv56kfvj49j0av5nml45x9ek9hz6", "", ("wallet", "bc1qa5wkgaew2dkv56kfvj49j0av5nml45x9ek9hz6")),
        (
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "wallet",
            ("wallet", "0x52908400098527886E0F7030069857D2E4169EE7"),
        ),
        ("MoonPeak v1", "", None),
        ("Mimikatz.exe", "", None),
        ("update.hwp", "hostname", None),
        ("bfbe94391dc7e0eaa1e59ae6d6029393", "sha256", None),
    ],
)
def test_classify_and_refang(value, hint, expected):
    assert classify(value, hint) == expected
    if expected is not None:
        assert stix.validate_pattern(pattern_for(*expected)) is None


def test_refang_leaves_clean_values_alone():
    assert refang("https://example.com/x") == "https://example.com/x"


def test_every_ioc_list_imports_and_reimport_is_unchanged(hub):
    expected = {
        "eset-scarcruft-samples.sha256.txt": 5,
        "volexity-2022-07-28-sharptongue-kimsuky-sharpext.csv": 3,
        "withsecure-andariel2025.csv": 19,
        "eset-nukesped-lazarus-samples.sha256.txt": 555,
        "elastic-rustbucket.ecs.ndjson": 17,
        "elastic-ref7001-kandykorn.ecs.ndjson": 73,
    }
    assert {KINDS[p.suffix] for p in IOC_FILES} == {"csv", "text", "ecs"}
    for path in IOC_FILES:
        kind = KINDS[path.suffix]
        outcome = run(hub, kind, path)
        assert outcome.refused_total == 0, (path.name, outcome.summary())
        assert outcome.accepted > 0
        if path.name in expected:
            assert outcome.accepted == expected[path.name], path.name
        again = run(hub, kind, path)
        assert (again.accepted, again.unchanged) == (0, outcome.accepted)
    indicators = [o for o in stored(hub).values() if o["type"] == "indicator"]
    for obj in indicators:
        assert stix.validate(obj) == [] and obj["name"] and obj["valid_from"]


def test_ecs_documents_keep_their_tlp_and_references(hub, tmp_path):
    path = DATA / "iocs" / "elastic-rustbucket.ecs.ndjson"
    assert run(hub, "ecs", path, collection="krlist").accepted == 17
    objs = stored(hub, "krlist").values()
    clear = stix.TLP2_MARKINGS[TLP.CLEAR]["id"]
    assert all(o["object_marking_refs"] == [clear] for o in objs)
    patterns = {o["pattern"] for o in objs}
    assert "[domain-name:value = 'webhostwatto.work.gd']" in patterns
    assert any(p.startswith("[x509-certificate:hashes.'SHA-256'") for p in patterns)
    web = next(o for o in objs if "webhostwatto" in o["pattern"])
    assert {"source_name": "reference", "url": "https://www.virustotal.com/gui/domain/webhostwatto.work.gd"} in web[
        "external_references"
    ]
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"threat": {"indicator": {"type": "autonomous-system", "as": {"number": 1}}}}\nnot json\n')
    outcome = run(hub, "ecs", bad)
    assert [r for _, r in outcome.refusals] == [
        "no supported observable in threat.indicator (type 'autonomous-system')",
        "not an ECS document with a threat.indicator object",
    ]


def test_text_list_keeps_section_headings_as_names(hub):
    run(hub, "text", DATA / "iocs" / "talos-2022-09-lazarus-three-rats.txt")
    names = {o["name"] for o in stored(hub).values()}
    assert "VSingle: 586f30907c3849c363145bfdcdabe3e2e4688cbd5688ff968e984b201b474730" in names


def test_actor_named_by_alias_links_to_the_canonical_intrusion_set(hub):
    run(hub, "attack", DATA / "dprk-attack.json", partner="hub", collection="reference")
    run(hub, "csv", DATA / "iocs" / "volexity-2022-07-28-sharptongue-kimsuky-sharpext.csv", actor="HIDDEN COBRA")
    rels = [o for o in stored(hub).values() if o["type"] == "relationship"]
    assert len(rels) == 3 and {r["target_ref"] for r in rels} == {LAZARUS}
    assert not any(o["type"] == "intrusion-set" for o in stored(hub).values())


def test_unknown_actor_is_created_once(hub, tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(
        b"\xef\xbb\xbfIndicator,Kind,Comment\r\n# a comment\r\nevil[.]example,domain,C2\r\nnot an ioc,domain,x\r\n"
    )
    first = run(hub, "csv", path, actor="Famous Chollima")
    assert (first.accepted, first.refused_total) == (3, 1)
    assert "not a recognised IOC of type domain" in first.refusals[0][1]
    again = run(hub, "csv", path, actor="famous chollima")
    assert again.accepted == 0
    actors = [o for o in stored(hub).values() if o["type"] == "intrusion-set"]
    assert [a["name"] for a in actors] == ["Famous Chollima"]


def test_csv_column_flags(hub, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("when,what,thing\n2024-01-01,c2,198.51.100.9\n")
    with pytest.raises(FeedError, match="no value column"):
        run(hub, "csv", path)
    assert run(hub, "csv", path, value_column="Thing", notes_column="what").accepted == 1
    with pytest.raises(FeedError, match="no column named 'nope'"):
        run(hub, "csv", path, value_column="nope")


# --------------------------------------------------------------------- cli


def test_cli_import_prints_summary_and_fails_in_one_line(hub):
    path = DATA / "ioc-stix" / "elastic-rustbucket-bluenoroff.stix21.json"
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["feeds", "import", "stix", str(path), "--partner", "krcert", "--collection", "shared", "--tlp", "green"],
        obj=hub,
    )
    assert result.exit_code == 0, result.output
    assert "18 accepted, 0 unchanged, 0 refused | lenient mappings: 1 x TLP:CLEAR" in result.output
    result = runner.invoke(
        main, ["feeds", "import", "stix", str(path), "--partner", "krcert", "--collection", "nope"], obj=hub
    )
    assert result.exit_code == 1 and "Error: unknown collection 'nope' in API root 'dprk'" in result.output
    result = runner.invoke(
        main,
        [
            "feeds",
            "import",
            "csv",
            str(DATA / "iocs" / "withsecure-andariel2025.csv"),
            "--partner",
            "krcert",
            "--collection",
            "shared",
            "--actor",
            "Andariel",
        ],
        obj=hub,
    )
    assert result.exit_code == 0 and "39 accepted" in result.output


# --------------------------------------------------------------------- remote TAXII


@pytest.fixture
def live(hub, make_app) -> Iterator[str]:
    yield from serve_in_thread(make_app())


def test_remote_taxii_is_incremental_resumable_and_keeps_state(hub, live, monkeypatch):
    from feeds import base, taxii_source

    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        pk = snap.by_slug["krcert"]
        shared = next(c.uuid for c in snap.collections.values() if c.alias == "shared")
    objs = [f.indicator(n) for n in range(30)]
    assert not ingest.ingest_envelope(hub, pk, shared, objs[:25]).failures
    monkeypatch.setenv("PEER_TOKEN", f.key_for(hub, "krcert"))
    monkeypatch.setattr(taxii_source, "PER_REQUEST", 10)
    url = f"{live}/dprk/collections/{shared}/"
    runner = CliRunner()
    args = [
        "feeds",
        "import",
        "taxii",
        url,
        "--partner",
        "krcert",
        "--collection",
        "krlist",
        "--token-env",
        "PEER_TOKEN",
        "--source-name",
        "peer",
    ]
    result = runner.invoke(main, args, obj=hub)
    assert result.exit_code == 0, result.output
    assert "25 accepted, 0 unchanged, 0 refused" in result.output
    with hub.session(write=False) as s:
        row = s.get(m.FeedSource, "peer")
        assert row.cursor and "PEER_TOKEN" in row.settings and row.settings.count("chub_") == 0
    assert not ingest.ingest_envelope(hub, pk, shared, objs[25:]).failures
    # The cron path: `feeds sync` re-runs every saved source with its stored settings.
    result = runner.invoke(main, ["feeds", "sync"], obj=hub)
    assert result.exit_code == 0, result.output
    assert "peer: 5 accepted, 0 unchanged, 0 refused" in result.output
    assert set(stored(hub, "krlist")) == {o["id"] for o in objs}
    result = runner.invoke(main, ["feeds", "sync", "peer"], obj=hub)
    assert "peer: 0 accepted, 0 unchanged, 0 refused" in result.output
    # An interrupted run keeps the pages it committed: fail on the second page, then resume.
    calls = []
    real = base.Connector._ingest

    def flaky(self, chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise base.FeedError("connection lost")
        return real(self, chunk)

    monkeypatch.setattr(base.Connector, "_ingest", flaky)
    more = [f.indicator(n) for n in range(100, 125)]
    assert not ingest.ingest_envelope(hub, pk, shared, more).failures
    result = runner.invoke(main, ["feeds", "sync"], obj=hub)
    assert result.exit_code == 1 and "peer: failed: connection lost" in result.output
    result = runner.invoke(main, ["feeds", "sync"], obj=hub)
    assert "peer: 15 accepted, 0 unchanged, 0 refused" in result.output, result.output
    assert calls == [10, 10, 10, 5]
    assert set(stored(hub, "krlist")) == {o["id"] for o in objs + more}
    monkeypatch.delenv("PEER_TOKEN")
    result = runner.invoke(main, ["feeds", "sync"], obj=hub)
    assert result.exit_code == 1 and "environment variable PEER_TOKEN is not set" in result.output
