"""MISP events and feeds, converted by misp-stix, through the same ingest path as every connector.

The events are built here from the real IOC lists in ../shared/data/iocs (Talos, Volexity). Those
lists hold no e-mail or wallet addresses, so the e-mail and btc attributes use documentation values.
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from feeds.base import FeedError
from feeds.iocs import classify
from hub import models as m
from hub import stix
from hub.cli import main
from hub.ids import HUB_NAMESPACE
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import snapshots
from tests.conftest import DATA
from tests.connectors import run, stored
from tests.worlds import feeds_world

LAZARUS = "intrusion-set--c93fccb1-e8e8-42cf-ae33-2ad1d183913a"
NS = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
STAMP = "1760428800"  # 2025-10-14T08:00:00Z
ORG = {"name": "Example CERT", "uuid": "7b3b3e6f-1c2d-4f5e-8a9b-0c1d2e3f4a5b"}
EMAIL = "recruiter@example.com"
WALLET = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
TLP1_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


@pytest.fixture
def hub(make_app) -> Hub:
    """The feeds tests' world: krcert, mycert; collections shared, krlist, reference."""
    return feeds_world(make_app().extensions["cti_hub"])


@pytest.fixture
def attack(hub) -> None:
    """ATT&CK's DPRK groups in the reference collection: the alias table."""
    run(hub, "attack", DATA / "dprk-attack.json", partner="hub", collection="reference")


def effective_tlp(hub: Hub) -> dict[str, TLP]:
    with hub.session(write=False) as s:
        return {i: TLP(t) for i, t in s.execute(select(m.ObjectVersion.stix_id, m.ObjectVersion.tlp))}


def iocs(file: str, kind: str, n: int) -> list[str]:
    """The first ``n`` values of one kind in a real IOC list."""
    found = []
    for line in (DATA / "iocs" / file).read_text(encoding="utf-8-sig").splitlines():
        hit = classify(line.split(",")[0].strip())
        if hit is not None and hit[0] == kind and hit[1] not in found:
            found.append(hit[1])
    assert len(found) >= n, (file, kind)
    return found[:n]


def attribute(
    kind: str,
    value: str,
    *,
    category: str = "Network activity",
    to_ids: bool = True,
    tags: tuple[str, ...] = (),
    **extra,
) -> dict:
    out = {
        "uuid": str(uuid.uuid5(NS, f"{kind}|{value}")),
        "type": kind,
        "category": category,
        "to_ids": to_ids,
        "value": value,
        "timestamp": STAMP,
        "distribution": "5",
        **extra,
    }
    if tags:
        out["Tag"] = [{"name": t} for t in tags]
    return out


def galaxy(name: str, synonyms: tuple[str, ...] = ()) -> dict:
    return {
        "uuid": "7cdff317-a673-4474-84ec-4f1754947823",
        "name": "Threat Actor",
        "type": "threat-actor",
        "namespace": "misp",
        "description": "Threat actors are characteristics of malicious actors.",
        "GalaxyCluster": [
            {
                "uuid": str(uuid.uuid5(NS, name)),
                "type": "threat-actor",
                "value": name,
                "tag_name": f'misp-galaxy:threat-actor="{name}"',
                "description": f"{name} (DPRK)",
                "meta": {"synonyms": list(synonyms), "country": ["KP"]},
            }
        ],
    }


def event(
    info: str,
    attributes: list[dict],
    *,
    tags: tuple[str, ...] = (),
    galaxies: tuple[dict, ...] = (),
    distribution: str | None = "1",
    orgc: dict = ORG,
) -> dict:
    body = {
        "uuid": str(uuid.uuid5(NS, info)),
        "info": info,
        "date": "2025-10-14",
        "timestamp": STAMP,
        "publish_timestamp": STAMP,
        "published": True,
        "analysis": "2",
        "threat_level_id": "1",
        "Orgc": orgc,
        "Org": orgc,
        "Tag": [{"name": t} for t in tags],
        "Galaxy": list(galaxies),
        "Attribute": attributes,
    }
    if distribution is not None:
        body["distribution"] = distribution
    return {"Event": body}


def lazarus_event() -> dict:
    """A Lazarus event from Talos' and Volexity's published IOCs, TLP:AMBER with one TLP:GREEN attribute."""
    (ip,) = iocs("talos-2022-09-lazarus-three-rats.txt", "ipv4-addr", 1)
    (url,) = iocs("talos-2022-09-lazarus-three-rats.txt", "url", 1)
    sha256 = iocs("talos-2022-09-lazarus-three-rats.txt", "SHA-256", 2)
    (md5,) = iocs("volexity-2021-08-17-inkysquid-apt37-part1.csv", "MD5", 1)
    (domain,) = iocs("talos-2024-08-moonpeak-north-korea.txt", "domain-name", 1)
    return event(
        "Lazarus Group: MagicRAT and VSingle infrastructure",
        [
            attribute("ip-dst", ip, comment="C2 server"),
            attribute("domain", domain, tags=("tlp:green",)),
            attribute("url", url),
            *(attribute("sha256", h, category="Payload delivery") for h in sha256),
            attribute("md5", md5, category="Payload delivery"),
            attribute("email-src", EMAIL, category="Payload delivery"),
            attribute("btc", WALLET, category="Financial fraud"),
            attribute("text", "Operation named by the reporting vendor", category="Other", to_ids=False),
        ],
        tags=("tlp:amber", 'misp-galaxy:threat-actor="Lazarus Group"'),
        galaxies=(galaxy("Lazarus Group", ("HIDDEN COBRA", "Guardians of Peace")),),
    )


def write(path: Path, doc) -> Path:
    path.write_bytes(orjson.dumps(doc))
    return path


# --------------------------------------------------------------------- one event


def test_event_becomes_indicators_with_patterns_tlp_and_the_canonical_actor(hub, attack, tmp_path):
    doc = lazarus_event()
    outcome = run(hub, "misp", write(tmp_path / "event.json", doc))
    assert outcome.refused_total == 0, outcome.summary()
    objs = stored(hub)
    assert outcome.accepted == len(objs)
    indicators = {o["id"]: o for o in objs.values() if o["type"] == "indicator"}
    attrs = {a["value"]: a for a in doc["Event"]["Attribute"]}
    patterns = {o["pattern"] for o in indicators.values()}
    sha256 = [v for v, a in attrs.items() if a["type"] == "sha256"]
    md5 = next(v for v, a in attrs.items() if a["type"] == "md5")
    assert {f"[file:hashes.'SHA-256' = '{h}']" for h in sha256} <= patterns
    assert f"[file:hashes.MD5 = '{md5}']" in patterns
    assert f"[email-message:from_ref.value = '{EMAIL}']" in patterns
    assert f"[cryptocurrency-wallet:value = '{WALLET}']" in patterns
    assert any(v in p for p in patterns for v, a in attrs.items() if a["type"] == "ip-dst")
    # One indicator per to_ids attribute, each with the attribute's uuid and a pattern the hub validates.
    to_ids = {a["uuid"] for a in attrs.values() if a["to_ids"]}
    assert {i.split("--", 1)[1] for i in indicators} == to_ids
    assert all(not stix.validate(o) for o in indicators.values())
    # TLP: the attribute's own tag, else the event's.
    tlp = effective_tlp(hub)
    green = "indicator--" + next(a["uuid"] for a in attrs.values() if a["type"] == "domain")
    assert tlp[green] == TLP.GREEN and TLP1_GREEN in indicators[green]["object_marking_refs"]
    assert {tlp[i] for i in indicators if i != green} == {TLP.AMBER}
    assert not any(o["type"] == "marking-definition" for o in objs.values())
    # The Lazarus galaxy is ATT&CK's intrusion set: every indicator indicates it, no duplicate actor.
    rels = [o for o in objs.values() if o["type"] == "relationship" and o["relationship_type"] == "indicates"]
    assert {(r["source_ref"], r["target_ref"]) for r in rels} == {(i, LAZARUS) for i in indicators}
    assert not any(o["type"] in ("threat-actor", "intrusion-set") for o in objs.values())
    report = objs["report--" + doc["Event"]["uuid"]]
    assert LAZARUS in report["object_refs"] and report["name"] == doc["Event"]["info"]


def test_the_original_event_is_kept_in_the_audit_trail(hub, tmp_path):
    doc = lazarus_event()
    run(hub, "misp", write(tmp_path / "lazarus-event.json", doc))
    with hub.session(write=False) as s:
        events = s.scalars(select(m.AuditEvent).where(m.AuditEvent.action == "feed.import.originals")).all()
    assert [e.target for e in events] == ["lazarus-event.json"]
    entry = orjson.loads(events[0].detail)["objects"]["report--" + doc["Event"]["uuid"]]
    assert entry["changes"] == ["converted from a MISP event by misp-stix"]
    assert entry["original"] == doc


def test_reimport_adds_nothing(hub, attack, tmp_path):
    path = write(tmp_path / "event.json", lazarus_event())
    first = run(hub, "misp", path)
    before = stored(hub)
    again = run(hub, "misp", path)
    assert (again.accepted, again.unchanged, again.refused_total) == (0, first.accepted, 0)
    assert stored(hub) == before


def test_an_alias_in_a_galaxy_or_a_tag_links_to_the_canonical_set(hub, attack, tmp_path):
    (ip,) = iocs("withsecure-andariel2025.csv", "ipv4-addr", 1)
    (domain,) = iocs("volexity-2022-07-28-sharptongue-kimsuky-sharpext.csv", "domain-name", 1)
    by_alias = event("HIDDEN COBRA activity", [attribute("ip-dst", ip)], galaxies=(galaxy("HIDDEN COBRA"),))
    by_tag = event("SharpExt", [attribute("domain", domain)], tags=('misp-galaxy:threat-actor="Kimsuky"',))
    unknown = event(
        "Unlisted cluster", [attribute("domain", "jquery.services")], galaxies=(galaxy("Example Unlisted Cluster"),)
    )
    outcome = run(hub, "misp", write(tmp_path / "events.json", [by_alias, by_tag, unknown]))
    assert outcome.refused_total == 0, outcome.summary()
    objs = stored(hub)
    kimsuky = next(
        o["id"] for o in stored(hub, "reference").values() if o["type"] == "intrusion-set" and o["name"] == "Kimsuky"
    )
    links = {
        (r["source_ref"], r["target_ref"])
        for r in objs.values()
        if r["type"] == "relationship" and r["relationship_type"] == "indicates"
    }
    own = next(o for o in objs.values() if o["type"] == "threat-actor")
    assert own["name"] == "Example Unlisted Cluster"
    assert links == {
        ("indicator--" + by_alias["Event"]["Attribute"][0]["uuid"], LAZARUS),
        ("indicator--" + by_tag["Event"]["Attribute"][0]["uuid"], kimsuky),
        ("indicator--" + unknown["Event"]["Attribute"][0]["uuid"], own["id"]),
    }
    assert "MISP galaxy 'HIDDEN COBRA' linked to the intrusion set 'Lazarus Group'" in outcome.summary()


@pytest.mark.parametrize(
    ("tags", "distribution", "option", "expected"),
    [
        ((), "0", None, TLP.AMBER_STRICT),  # your organisation only
        ((), "1", None, TLP.AMBER),  # this community only
        ((), "3", None, TLP.GREEN),  # all communities
        ((), "3", TLP.CLEAR, TLP.CLEAR),  # --tlp wins over the distribution
        (("TLP:AMBER+STRICT",), "3", TLP.CLEAR, TLP.AMBER_STRICT),  # a tag (any case) wins over both
        ((), None, None, TLP.AMBER),  # nothing: the collection's default (shared: AMBER)
    ],
)
def test_tlp_from_tags_option_and_distribution(hub, tmp_path, tags, distribution, option, expected):
    (domain,) = iocs("talos-2024-08-moonpeak-north-korea.txt", "domain-name", 1)
    doc = event("MoonPeak", [attribute("domain", domain)], tags=tags, distribution=distribution)
    with hub.session() as s:
        s.execute(update(m.Collection).where(m.Collection.alias == "shared").values(default_tlp=int(TLP.AMBER)))
        snapshots.bump_rules(s)
    outcome = run(hub, "misp", write(tmp_path / "e.json", doc), tlp=option)
    assert outcome.refused_total == 0, outcome.summary()
    tlp = effective_tlp(hub)
    assert tlp["indicator--" + doc["Event"]["Attribute"][0]["uuid"]] == expected
    assert tlp["report--" + doc["Event"]["uuid"]] == expected


def test_sharing_checks_refuse_with_reasons_in_the_summary(hub, tmp_path):
    other = {"name": "MYCERT", "uuid": str(uuid.uuid5(HUB_NAMESPACE, "mycert"))}  # another partner's identity
    (ip,) = iocs("talos-2022-09-lazarus-three-rats.txt", "ipv4-addr", 1)
    posing = event("Posing as MYCERT", [attribute("ip-dst", ip)], orgc=other)
    outcome = run(hub, "misp", write(tmp_path / "e.json", posing))
    assert outcome.refused_total > 0
    assert "names another partner; publish under your own identity" in outcome.summary()
    assert not any(o.get("created_by_ref") == f"identity--{other['uuid']}" for o in stored(hub).values())
    red = run(hub, "misp", write(tmp_path / "red.json", event("Red", [attribute("ip-dst", ip)], tags=("tlp:red",))))
    assert red.accepted == 0 and red.refused_total > 0
    assert red.summary().endswith(
        f"refused: {red.refused_total} x a TLP:RED object must name its recipients in a sharing marking"
    )


def test_list_of_events_and_rest_search_response(hub, tmp_path):
    sha = iocs("eset-nukesped-lazarus-samples.sha256.txt", "SHA-256", 4)
    events = [event(f"NukeSped {n}", [attribute("sha256", h, category="Payload delivery")]) for n, h in enumerate(sha)]
    first = run(hub, "misp", write(tmp_path / "list.json", events[:2]))
    second = run(hub, "misp", write(tmp_path / "search.json", {"response": events}))
    assert first.refused_total == second.refused_total == 0
    reports = {o["id"] for o in stored(hub).values() if o["type"] == "report"}
    assert reports == {"report--" + e["Event"]["uuid"] for e in events}
    assert second.unchanged > 0  # the first two events were already there


# --------------------------------------------------------------------- feeds


def make_feed(folder: Path, events: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for doc in events:
        ev = doc["Event"]
        write(folder / f"{ev['uuid']}.json", doc)
        manifest[ev["uuid"]] = {
            "info": ev["info"],
            "Orgc": ev["Orgc"],
            "Tag": ev["Tag"],
            "date": ev["date"],
            "analysis": ev["analysis"],
            "threat_level_id": ev["threat_level_id"],
            "timestamp": ev["timestamp"],
        }
    write(folder / "manifest.json", manifest)
    return folder


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1, as a MISP feed is published."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def feed_events() -> list[dict]:
    urls = iocs("talos-2025-10-beavertail-ottercookie.txt", "url", 2)
    hashes = iocs("talos-2025-10-beavertail-ottercookie.txt", "SHA-256", 2)
    return [
        event("BeaverTail C2", [attribute("url", u) for u in urls], tags=("tlp:green",)),
        event(
            "OtterCookie samples",
            [attribute("sha256", h, category="Payload delivery") for h in hashes],
            tags=("tlp:amber",),
            galaxies=(galaxy("Lazarus Group"),),
        ),
    ]


def test_feed_over_http_then_from_its_directory(hub, attack, served):
    root, base = served
    events = feed_events()
    folder = make_feed(root / "feed", events)
    outcome = run(hub, "misp", f"{base}/feed/")
    assert outcome.refused_total == 0, outcome.summary()
    objs = stored(hub)
    assert {"report--" + e["Event"]["uuid"] for e in events} <= set(objs)
    indicators = [o for o in objs.values() if o["type"] == "indicator"]
    assert len(indicators) == 4
    assert sum(1 for o in objs.values() if o["type"] == "relationship" and o["target_ref"] == LAZARUS) == 2
    # The same feed from disk, and its manifest URL: nothing new.
    again = run(hub, "misp", folder)
    assert (again.accepted, again.refused_total) == (0, 0) and again.unchanged == outcome.accepted
    assert run(hub, "misp", f"{base}/feed/manifest.json").accepted == 0


def test_feed_event_that_cannot_be_read_is_refused_and_the_rest_imported(hub, served):
    root, base = served
    events = feed_events()
    folder = make_feed(root / "feed", events)
    (folder / f"{events[0]['Event']['uuid']}.json").unlink()
    outcome = run(hub, "misp", f"{base}/feed/")
    assert [k for k, _ in outcome.refusals] == [f"event {events[0]['Event']['uuid']}"]
    assert "cannot fetch" in outcome.refusals[0][1] and "404" in outcome.refusals[0][1]
    assert "report--" + events[1]["Event"]["uuid"] in stored(hub)


# --------------------------------------------------------------------- errors


def object_count(hub: Hub) -> int:
    with hub.session(write=False) as s:
        return s.scalar(
            select(func.count())
            .select_from(m.ObjectVersion)
            .join(m.Collection, m.Collection.id == m.ObjectVersion.collection_id)
            .where(m.Collection.alias == "shared")
        )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"type": "bundle", "id": "bundle--1", "objects": []}', "not MISP data: expected an event"),
        (b'[{"type": "indicator"}]', "not MISP data"),
        (b'{"Event": {"uuid": "5f1c2a2e', "not JSON"),
        (b"", "not JSON"),
        (b'"just a string"', "not MISP data"),
    ],
)
def test_malformed_input_is_one_clear_error_and_stores_nothing(hub, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(FeedError, match=message):
        run(hub, "misp", path)
    assert object_count(hub) == 0


def test_missing_file_and_unreachable_feed_are_errors(hub, tmp_path):
    with pytest.raises(FeedError, match=r"cannot read .*nope\.json: No such file"):
        run(hub, "misp", tmp_path / "nope.json")
    with pytest.raises(FeedError, match="cannot read .*manifest.json"):
        run(hub, "misp", tmp_path)  # a directory without a manifest
    assert object_count(hub) == 0


def test_an_event_without_uuid_is_refused(hub, tmp_path):
    broken = {"Event": {"info": "no uuid", "Attribute": []}}
    outcome = run(hub, "misp", write(tmp_path / "e.json", [broken]))
    assert outcome.refusals == [("events[0]", 'not a MISP event: expected {"Event": {...}} with a uuid')]
    assert object_count(hub) == 0


def test_cli_import_misp(hub, attack, tmp_path):
    path = write(tmp_path / "lazarus.json", lazarus_event())
    runner = CliRunner()
    args = ["feeds", "import", "misp", str(path), "--partner", "krcert", "--collection", "shared", "--tlp", "green"]
    result = runner.invoke(main, args, obj=hub)
    assert result.exit_code == 0, result.output
    assert "accepted, 0 unchanged, 0 refused" in result.output
    assert "1 x MISP btc attribute mapped to a cryptocurrency-wallet indicator" in result.output
    result = runner.invoke(main, args, obj=hub)
    assert result.exit_code == 0 and " 0 accepted" in " " + result.output.splitlines()[-1]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(main, [*args[:3], str(bad), *args[4:]], obj=hub)
    assert result.exit_code == 1 and result.output.startswith("Error: not JSON:")


def test_without_the_misp_extra_the_import_names_it_and_reads_nothing(hub, tmp_path, monkeypatch):
    """misp-stix is the [misp] extra: without it the import fails with one line naming the extra."""
    monkeypatch.setitem(sys.modules, "misp_stix_converter", None)  # import fails as when it is not installed
    path = write(tmp_path / "lazarus.json", lazarus_event())
    args = ["feeds", "import", "misp", str(path), "--partner", "krcert", "--collection", "shared"]
    result = CliRunner().invoke(main, args, obj=hub)
    assert result.exit_code == 1
    assert result.output == (
        "Error: the misp connector needs misp-stix, which is not installed: pip install 'cti-hub[misp]'\n"
    )
    with pytest.raises(FeedError, match=r"pip install 'cti-hub\[misp\]'"):
        run(hub, "misp", path)  # the same for a scheduled source or any other caller of the connector
    assert object_count(hub) == 0


def test_attributes_without_uuid_get_a_stable_one_and_the_audit_keeps_the_event_as_read(hub, tmp_path):
    (domain,) = iocs("volexity-2022-07-28-sharptongue-kimsuky-sharpext.csv", "domain-name", 1)
    bare = attribute("domain", domain)
    del bare["uuid"]
    doc = event("SharpExt without uuids", [bare])
    path = write(tmp_path / "e.json", doc)
    first = run(hub, "misp", path)
    assert first.refused_total == 0 and "1 x attribute without a uuid given one" in first.summary()
    assert run(hub, "misp", path).accepted == 0
    with hub.session(write=False) as s:
        detail = s.scalars(select(m.AuditEvent.detail).where(m.AuditEvent.action == "feed.import.originals")).one()
    assert orjson.loads(detail)["objects"]["report--" + doc["Event"]["uuid"]]["original"] == doc
