"""Tests for the generated demo and benchmark content."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections import Counter

import orjson
import pytest
import stix2
from stix2patterns.validator import run_validator

from hub.demo.data import (
    TLP2_IDS,
    Publisher,
    actors,
    envelope_chunks,
    indicators,
    sharing_marking,
)
from hub.demo.observables import IPV4_BENCH_NET, IPV4_PREFIXES
from hub.policy import TLP

PUBLISHERS = (
    Publisher("krcert", "identity--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"),
    Publisher("cisa", "identity--1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
    Publisher("sgcert", "identity--9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"),
)
EXTENSION_ID = "extension-definition--2f0a35f4-54b5-4d08-9a8c-6d2f5b1e7c10"
SHARING = (
    "marking-definition--4f6c2d3e-1a5b-4c7d-8e9f-0a1b2c3d4e5f",
    "marking-definition--7a8b9c0d-1e2f-4a3b-9c5d-6e7f8a9b0c1d",
)
TLP_BY_ID = {ref: level for level, ref in TLP2_IDS.items()}
ALLOWED_NETS = [ipaddress.ip_network(net) for net in (*(p + "0/24" for p in IPV4_PREFIXES), IPV4_BENCH_NET)]
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".example.com", ".example.net", ".example.org")
VALUE = re.compile(r"^\[([a-z0-9-]+):([^ ]+) = '([^']*)'\]$")


def stream(count: int = 5000, **kwargs) -> list[dict]:
    """Generate a stream with the test publishers and sharing markings."""
    kwargs.setdefault("sharing_markings", SHARING)
    kwargs.setdefault("sharing_ratio", 0.1)
    return list(indicators(count, publishers=PUBLISHERS, **kwargs))


def tlp_of(obj: dict) -> TLP:
    """Return the single TLP 2.0 level an object carries."""
    (level,) = [TLP_BY_ID[ref] for ref in obj["object_marking_refs"] if ref in TLP_BY_ID]
    return level


def first_versions(objects: list[dict]) -> list[dict]:
    """Return each indicator's first version, in stream order."""
    seen: set[str] = set()
    out = []
    for obj in objects:
        if obj["type"] == "indicator" and obj["id"] not in seen:
            seen.add(obj["id"])
            out.append(obj)
    return out


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return stream(20_000, seed=7)


def test_same_arguments_give_the_same_bytes() -> None:
    first = b"\n".join(orjson.dumps(o) for o in stream(3000, seed=3))
    second = b"\n".join(orjson.dumps(o) for o in stream(3000, seed=3))
    assert first == second
    assert first != b"\n".join(orjson.dumps(o) for o in stream(3000, seed=4))


@pytest.mark.parametrize("count", [0, 1, 2, 137, 5000])
@pytest.mark.parametrize("relationships", [True, False])
def test_yields_exactly_count_objects(count: int, relationships: bool) -> None:
    assert len(stream(count, relationships=relationships)) == count


def test_stream_holds_indicators_relationships_and_versions(sample: list[dict]) -> None:
    kinds = Counter(o["type"] for o in sample)
    assert set(kinds) == {"indicator", "relationship"}
    originals = first_versions(sample)
    assert 0.03 < (kinds["indicator"] - len(originals)) / len(originals) < 0.08
    assert 0.17 < kinds["relationship"] / len(originals) < 0.23
    assert {o["labels"][2] for o in originals} == {"ipv4", "domain", "url", "file", "email", "wallet"}


def test_objects_parse_as_strict_stix_21(sample: list[dict]) -> None:
    versions = [o for o in sample if o["type"] == "indicator" and o["created"] != o["modified"]]
    relations = [o for o in sample if o["type"] == "relationship"]
    picked = sample[::100] + versions[:60] + relations[:60] + [o for o in versions if o.get("revoked")][:20]
    assert len(picked) > 300
    for obj in picked:
        parsed = stix2.parse(obj, allow_custom=False, version="2.1")
        assert parsed.id == obj["id"]


def test_patterns_are_valid_single_observables(sample: list[dict]) -> None:
    for obj in first_versions(sample)[:600]:
        assert run_validator(obj["pattern"]) == [], obj["pattern"]
        assert VALUE.match(obj["pattern"]), obj["pattern"]
        assert obj["pattern_type"] == "stix"
        assert obj["name"] and obj["valid_from"] and obj["spec_version"] == "2.1"


def test_ids_are_uuid5_and_unique(sample: list[dict]) -> None:
    originals = first_versions(sample)
    relations = [o for o in sample if o["type"] == "relationship"]
    ids = [o["id"] for o in originals + relations]
    assert len(ids) == len(set(ids))
    assert all(uuid.UUID(i.split("--")[1]).version == 5 for i in ids)


def test_only_documentation_addresses_and_reserved_names(sample: list[dict]) -> None:
    for obj in first_versions(sample):
        kind, prop, value = VALUE.match(obj["pattern"]).groups()
        if kind == "ipv4-addr":
            assert any(ipaddress.ip_address(value) in net for net in ALLOWED_NETS), value
        elif kind in ("domain-name", "email-addr"):
            assert value.endswith(RESERVED_SUFFIXES), value
        elif kind == "url":
            assert value.split("/")[2].endswith(RESERVED_SUFFIXES), value


def test_tlp_mix_follows_the_default_weights(sample: list[dict]) -> None:
    originals = first_versions(sample)[:10_000]
    counts = Counter(tlp_of(o) for o in originals)
    expected = {TLP.CLEAR: 0.10, TLP.GREEN: 0.45, TLP.AMBER: 0.35, TLP.AMBER_STRICT: 0.08, TLP.RED: 0.02}
    for level, share in expected.items():
        assert abs(counts[level] / len(originals) - share) < 0.02, (level, counts)


def test_tlp_mix_can_be_chosen() -> None:
    objects = stream(10_000, tlp_mix={TLP.GREEN: 3, TLP.AMBER_STRICT: 1})
    counts = Counter(tlp_of(o) for o in first_versions(objects))
    assert set(counts) == {TLP.GREEN, TLP.AMBER_STRICT}
    assert abs(counts[TLP.GREEN] / counts.total() - 0.75) < 0.02


def test_red_always_carries_a_sharing_marking() -> None:
    objects = stream(5000, tlp_mix={TLP.RED: 1, TLP.AMBER: 1}, sharing_ratio=0.0)
    red = [o for o in objects if tlp_of(o) is TLP.RED]
    assert len(red) > 1000
    assert all(len(o["object_marking_refs"]) == 2 and o["object_marking_refs"][1] in SHARING for o in red)
    amber = [o for o in objects if tlp_of(o) is TLP.AMBER]
    assert all(len(o["object_marking_refs"]) == 1 for o in amber)


def test_red_becomes_amber_without_sharing_markings() -> None:
    objects = stream(3000, tlp_mix={TLP.RED: 1}, sharing_markings=())
    assert {tlp_of(o) for o in objects} == {TLP.AMBER}
    assert all(len(o["object_marking_refs"]) == 1 for o in objects)


def test_sharing_ratio_marks_that_share_of_objects(sample: list[dict]) -> None:
    below_red = [o for o in first_versions(sample) if tlp_of(o) is not TLP.RED]
    marked = [o for o in below_red if len(o["object_marking_refs"]) == 2]
    assert abs(len(marked) / len(below_red) - 0.1) < 0.02
    assert {o["object_marking_refs"][1] for o in marked} == set(SHARING)


def test_versions_keep_id_and_increase_modified(sample: list[dict]) -> None:
    last: dict[str, dict] = {}
    for obj in sample:
        previous = last.get(obj["id"])
        if previous is not None:
            assert obj["modified"] > previous["modified"]
            assert obj["created"] == previous["created"]
            assert not previous.get("revoked"), "a revoked object got a new version"
            assert obj["object_marking_refs"] == previous["object_marking_refs"]
            assert obj != {**previous, "modified": obj["modified"]}, "a version must change something"
        last[obj["id"]] = obj
    assert any(o.get("revoked") for o in sample)


def test_timestamps_increase_through_the_stream(sample: list[dict]) -> None:
    stamps = [o["modified"] for o in sample]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert sample[0]["created"].startswith("2024-01-01T")
    assert all(o["valid_until"] > o["valid_from"] for o in sample if "valid_until" in o)


def test_relationships_point_from_the_indicator_to_an_actor(sample: list[dict]) -> None:
    actor_ids = {a["id"] for a in actors()}
    for previous, obj in zip(sample, sample[1:], strict=False):
        if obj["type"] != "relationship":
            continue
        assert obj["relationship_type"] == "indicates"
        assert obj["target_ref"] in actor_ids
        assert obj["source_ref"] == previous["id"]
        assert obj["created_by_ref"] == previous["created_by_ref"]
        assert obj["object_marking_refs"] == previous["object_marking_refs"]


def test_publishers_are_the_originators(sample: list[dict]) -> None:
    assert {o["created_by_ref"] for o in sample} == {p.identity_id for p in PUBLISHERS}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        indicators(10, publishers=())
    with pytest.raises(ValueError):
        indicators(10, publishers=PUBLISHERS, tlp_mix={TLP.GREEN: 0})


def test_actors_are_stable_valid_intrusion_sets() -> None:
    groups = actors()
    assert [g["name"] for g in groups] == [
        "Lazarus Group",
        "APT38",
        "Kimsuky",
        "APT37",
        "Andariel",
        "Moonstone Sleet",
        "Famous Chollima",
    ]
    assert groups == actors()
    assert len({g["id"] for g in groups}) == len(groups)
    assert "BlueNoroff" in groups[1]["aliases"] and "ScarCruft" in groups[3]["aliases"]
    for group in groups:
        assert stix2.parse(group, allow_custom=False, version="2.1").type == "intrusion-set"


def test_sharing_marking_has_the_design_shape() -> None:
    marking_id = SHARING[0]
    marking = sharing_marking(
        marking_id=marking_id,
        name="Share with: KrCERT, CISA",
        extension_id=EXTENSION_ID,
        partners=("krcert", "cisa"),
    )
    assert marking == {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": "2024-01-01T00:00:00.000Z",
        "name": "Share with: KrCERT, CISA",
        "extensions": {
            EXTENSION_ID: {
                "extension_type": "property-extension",
                "share_with": {"partners": ["krcert", "cisa"], "groups": [], "countries": []},
                "exclude_partners": [],
                "no_federation": False,
            }
        },
    }
    assert stix2.parse(marking, allow_custom=False, version="2.1").id == marking_id


def test_envelope_chunks_split_in_order() -> None:
    objects = stream(25)
    envelopes = list(envelope_chunks(objects, 10))
    assert [len(e["objects"]) for e in envelopes] == [10, 10, 5]
    assert [o for e in envelopes for o in e["objects"]] == objects
    assert list(envelope_chunks([], 10)) == []
    with pytest.raises(ValueError):
        list(envelope_chunks(objects, 0))


def test_a_large_stream_keeps_its_shape() -> None:
    """200,000 objects in one pass: exact count, distinct (id, modified), every publisher, the asked mixes."""
    kinds: Counter[str] = Counter()
    creators: Counter[str] = Counter()
    keys, shared, non_red = set(), 0, 0
    for obj in indicators(200_000, publishers=PUBLISHERS, sharing_markings=SHARING, sharing_ratio=0.1):
        kinds[obj["type"]] += 1
        creators[obj["created_by_ref"]] += 1
        keys.add((obj["id"], obj["modified"]))
        refs = obj.get("object_marking_refs", [])
        if TLP_BY_ID.get(refs[0]) is not TLP.RED:
            non_red += 1
            shared += any(ref in SHARING for ref in refs)
    assert sum(kinds.values()) == len(keys) == 200_000
    assert set(kinds) == {"indicator", "relationship"} and 0.1 < kinds["relationship"] / 200_000 < 0.25
    assert set(creators) == {p.identity_id for p in PUBLISHERS}
    assert min(creators.values()) > 200_000 / len(PUBLISHERS) * 0.9
    assert 0.08 < shared / non_red < 0.12
