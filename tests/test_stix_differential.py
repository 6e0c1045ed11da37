"""Live differential test: ``hub.stix.validate`` against stix2-validator, object by object.

Both judge (a) every object of the real public data in ../shared/data and (b) deterministic mutations
of valid objects of every type (each property dropped, given a value of the wrong type, emptied; bad
timestamps, identifiers, references, patterns and spec versions; custom properties; STIX 2.0 objects).
Where the verdicts differ, the case must be on ``ALLOWED`` under a short kind name that says why;
any other disagreement fails, naming the object and both verdicts, and so does an entry nothing uses.

The oracle's options and how it is kept offline are in tests/stix_oracle.py. ``make fuzz`` (through
HUB_TEST_FUZZ_EXAMPLES) adds that many random combinations of mutations.
"""

from __future__ import annotations

import collections
import copy
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import stix2validator.validator as library
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.stix import validate
from tests import stix_oracle
from tests.stix_oracle import Verdict

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NOT_STIX = {"VALIDATION.json", "PROVENANCE.json", "SOURCES.json"}
EXAMPLES = int(os.environ.get("HUB_TEST_FUZZ_EXAMPLES", "0"))  # 0: a fixed budget of 100, derandomised


class Case(NamedTuple):
    """One object both validators judge, and where it came from."""

    source: str  # "data" or the mutation kind
    label: str  # the file and object id, or the base object and what was changed
    obj: Any


class Allowed(NamedTuple):
    """A known disagreement: which side accepts, why, and which cases it covers."""

    hub_accepts: bool
    why: str
    covers: Callable[[Case, list[str], Verdict], bool]


def _hub_says(*words: str) -> Callable[[Case, list[str], Verdict], bool]:
    """Cover the cases where one of the hub's reasons contains any of ``words``."""
    return lambda case, hub, oracle: any(w in r for r in hub for w in words)


def _oracle_says(*words: str) -> Callable[[Case, list[str], Verdict], bool]:
    """Cover the cases where one of stix2-validator's errors contains any of ``words``."""
    return lambda case, hub, oracle: any(w in e for e in oracle.errors for w in words)


_SCO_VALUES = ("value: ''", "mime_type: ''", "cpe: ''")

ALLOWED: dict[str, Allowed] = {
    # The hub is stricter, as STIX 2.1 says.
    "observable-uuid-version": Allowed(False, (
        "the hub is stricter: like stix2 it takes only version 4 or 5 UUIDs in observable ids (STIX 2.1 §2.9 "
        "asks for a UUIDv5, or a UUIDv4 without ID contributing properties); stix2-validator takes any RFC 4122 "
        "version there"), _hub_says("cyber-observable must use a version 4 or 5 UUID")),
    "id-of-another-type": Allowed(False, (
        "the hub is stricter: STIX 2.1 §2.9 makes an id start with the object's own type; stix2-validator's "
        "schema for custom objects checks only the identifier's form"), _hub_says("property 'id' must start with")),
    "reference-form": Allowed(False, (
        "the hub is stricter: a property named *_ref or *_refs holds identifiers (STIX 2.1 §2.9, §11.1); "
        "stix2-validator checks their form only in the references of domain and relationship objects, not in "
        "those of observables or in custom properties"),
        _hub_says("is not a valid STIX identifier", "must be a STIX identifier string")),
    "empty-list-unchecked": Allowed(False, (
        "the hub is stricter: STIX 2.1 §2.7 forbids empty lists in every property; stix2-validator's schemas "
        "miss them in custom *_refs properties and in the properties a marking definition does not define"),
        _hub_says("must not be an empty list")),
    "custom-property-name": Allowed(False, (
        "the hub is stricter: STIX 2.1 §11.1 limits custom property names to 3-250 characters of a-z, 0-9 "
        "and '_' (MUST); stix2-validator has this only among its SHOULD checks, which give warnings"),
        _hub_says("is not a valid custom property name")),
    "declared-2.0": Allowed(False, (
        "the oracle is told to judge every object as STIX 2.1 (stix_oracle.OPTIONS) and then ignores a "
        "declared spec_version '2.0'; STIX 2.1 §3.2 requires '2.1', and '2.0' is content to upgrade first"),
        _hub_says("property 'spec_version' must be '2.1', got '2.0'")),
    "extension-definition-creator": Allowed(False, (
        "the hub is right: STIX 2.1 §7.3 makes created_by_ref required on an extension-definition; "
        "stix2-validator's schema leaves it optional"), _hub_says("property 'created_by_ref' is required")),
    "empty-definition-type": Allowed(False, (
        "the hub is stricter: an empty definition_type names no kind of definition, and the hub takes only "
        "'tlp' and 'statement' (STIX 2.1 §7.2.1.3); stix2-validator takes any string"),
        _hub_says("needs properties 'definition_type' and 'definition'")),
    # The hub is laxer: still to be closed.
    "observable-value-format": Allowed(True, (
        "the hub is laxer: stix2-validator checks the form of observable values (IPv4, IPv6 and MAC "
        "addresses, domain names, e-mail addresses, URLs), MIME types and CPEs; the hub checks that they "
        "are strings"), _oracle_says(*(f": {name}" for name in _SCO_VALUES))),
    "empty-payload": Allowed(True, (
        "stix2-validator's base64 pattern refuses '', which is the base64 encoding of an empty payload; the "
        "hub takes it"), _oracle_says("payload_bin: '' must be a base64-encoded string")),
    "pattern-names": Allowed(True, (
        "the hub is laxer: stix2-validator also checks the object types and property names in a pattern "
        "against the STIX naming rules; the hub takes the stix2-patterns grammar's verdict"),
        _oracle_says("Pattern failed to validate: ")),
}  # fmt: skip


# --------------------------------------------------------------------------------------
# The cases


def _objects(path: Path) -> list[Any]:
    """The objects of a data file: a bundle's objects, an array's items, or the one object; [] if not JSON."""
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return []
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        return data["objects"]
    return [data]


def data_cases() -> list[Case]:
    """Every object of every STIX file in the shared data."""
    cases = []
    for path in sorted(DATA.rglob("*.json")):
        if path.name in NOT_STIX:
            continue
        relpath = path.relative_to(DATA).as_posix()
        for index, obj in enumerate(_objects(path)):
            name = obj.get("id") if isinstance(obj, dict) else None
            cases.append(Case("data", f"{relpath} {name or f'objects[{index}]'}", obj))
    return cases


_REF = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
_HEADER = {"spec_version": "2.1", "created": "2021-06-01T10:00:00.000Z", "modified": "2021-06-01T10:00:00.000Z"}
# Valid objects of the types the data lacks (the SCOs come from the data's cti-python-stix2 examples).
_MADE_UP = [
    {**_HEADER, "type": "grouping", "context": "suspicious-activity", "object_refs": [_REF]},
    {**_HEADER, "type": "incident", "name": "Breach"},
    {**_HEADER, "type": "location", "latitude": 39.0, "longitude": 125.75, "precision": 1000.0},
    {**_HEADER, "type": "malware-analysis", "product": "sandbox", "result": "malicious"},
    {**_HEADER, "type": "note", "content": "Lazarus again", "object_refs": [_REF]},
    {**_HEADER, "type": "opinion", "opinion": "agree", "object_refs": [_REF]},
    {**_HEADER, "type": "language-content", "object_ref": _REF, "object_modified": _HEADER["modified"],
     "contents": {"de": {"name": "Bösartig"}}},
    {**_HEADER, "type": "observed-data", "first_observed": "2021-06-01T10:00:00Z",
     "last_observed": "2021-06-01T11:00:00Z", "number_observed": 3,
     "object_refs": ["ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd"]},
    {**_HEADER, "type": "x-acme-thing", "name": "custom object", "x_acme_score": 3},
    {"type": "artifact", "spec_version": "2.1", "payload_bin": "ZXhhbXBsZQ==", "mime_type": "text/plain"},
]  # fmt: skip


def _kind(obj: dict) -> str:
    """The type, and for a marking definition what defines it (tlp, statement or an extension)."""
    if obj["type"] == "marking-definition":
        return f"marking-definition {obj.get('definition_type', 'extension')}"
    return obj["type"]


def base_objects() -> list[dict]:
    """The smallest object of every kind that both validators accept, from the data where it has one."""
    seen: dict[str, dict] = {}
    candidates = [c.obj for c in data_cases() if isinstance(c.obj, dict) and isinstance(c.obj.get("type"), str)]
    for obj in sorted(candidates, key=lambda o: len(orjson.dumps(o))):
        if _kind(obj) not in seen and not validate(obj) and stix_oracle.verdict(obj).valid:
            seen[_kind(obj)] = obj
    for index, body in enumerate(_MADE_UP):
        seen.setdefault(body["type"], {**body, "id": f"{body['type']}--5bf8bd1e-6a9e-4b3e-8d6e-0d8e1e8e7e{index:02x}"})
    return list(seen.values())


_WRONG_TYPES: list[Any] = [7, "x", ["x"], {"k": "v"}, True, None]
_BAD_TIMESTAMPS = ["2020-13-01T00:00:00Z", "2020-01-01T00:00:00", "2021-02-29T00:00:00Z", "2020-01-01 00:00:00Z",
                   "yesterday", "2020-01-01T24:00:00Z"]  # fmt: skip
_UUID = "5bf8bd1e-6a9e-4b3e-8d6e-0d8e1e8e7e1a"
_BAD_PATTERNS = ["[ipv4-addr:value = '1.2.3.4'", "ipv4-addr:value = '1.2.3.4'", "[ipv4-addr:value == '1.2.3.4']",
                 "[file:hashes.MD5 = 'x'] AND", "[x:y = 1] WITHIN 0 SECONDS", ""]  # fmt: skip
_CUSTOM_PROPERTIES: list[tuple[str, Any]] = [
    ("x_acme", "v"),
    ("x_acme_ref", _REF),
    ("x_acme_ref", "nope"),
    ("x_acme_refs", []),
    ("Bad-Name", 1),
    ("ab", 1),
    ("labels", []),
]


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T"


def _with(obj: dict, name: str, value: Any) -> dict:
    return {**copy.deepcopy(obj), name: value}


def _mutations(obj: dict) -> Iterator[tuple[str, str, dict]]:
    """(kind, what changed, mutated object) for one valid base object."""
    for name, value in obj.items():
        yield "drop", f"without '{name}'", {k: v for k, v in obj.items() if k != name}
        for wrong in _WRONG_TYPES:
            if type(wrong) is not type(value) and name not in ("type", "id"):
                yield "wrong-type", f"'{name}' = {wrong!r}", _with(obj, name, wrong)
        if isinstance(value, list | dict | str):
            yield "empty", f"'{name}' empty", _with(obj, name, type(value)())
        if isinstance(value, list) and value and isinstance(value[0], dict):
            yield "empty", f"'{name}' item empty", _with(obj, name, [{}])
        if _is_timestamp(value):
            for bad in _BAD_TIMESTAMPS:
                yield "bad-timestamp", f"'{name}' = {bad!r}", _with(obj, name, bad)
        if name.endswith("_ref") and name != "object_ref":
            yield "bad-ref", f"'{name}' not an id", _with(obj, name, "identity-5bf8bd1e")
        if name.endswith("_refs"):
            yield "bad-ref", f"'{name}' item not an id", _with(obj, name, ["not-an-id"])
    kind = obj["type"]
    for bad_id in (f"{kind}--{_UUID.upper()}", f"{kind}--{_UUID[:-1]}", f"{kind}-{_UUID}", f"x-other--{_UUID}",
                   f"{kind}--{_UUID[:14]}1{_UUID[15:]}", f"{kind}--{_UUID[:14]}5{_UUID[15:]}",
                   f"{kind}--{_UUID[:19]}0{_UUID[20:]}"):  # fmt: skip
        yield "bad-id", f"id {bad_id!r}", _with(obj, "id", bad_id)
    for version in ("2.0", "2.2", 2.1):
        yield "spec-version", f"spec_version {version!r}", _with(obj, "spec_version", version)
    for name, value in _CUSTOM_PROPERTIES:
        yield "custom-property", f"{name!r} = {value!r}", _with(obj, name, value)
    if kind == "indicator":
        for bad in _BAD_PATTERNS:
            yield "bad-pattern", f"pattern {bad!r}", {**_with(obj, "pattern", bad), "pattern_type": "stix"}
    if "created" in obj:
        stix20 = {k: v for k, v in obj.items() if k != "spec_version"}
        yield "stix20", "STIX 2.0 (no spec_version)", stix20


def mutation_cases(bases: list[dict]) -> list[Case]:
    """Every single mutation of every base object."""
    return [Case(kind, f"{obj['id']} {what}", mutated) for obj in bases for kind, what, mutated in _mutations(obj)]


# --------------------------------------------------------------------------------------
# The comparison


def _allowed(case: Case, hub: list[str], oracle: Verdict) -> str | None:
    """The allow-list entry that covers a disagreement, or None."""
    for kind, entry in ALLOWED.items():
        if entry.hub_accepts == (hub == []) and entry.covers(case, hub, oracle):
            return kind
    return None


def compare(cases: list[Case]) -> tuple[list[str], collections.Counter]:
    """Judge every case with both; return the unexplained disagreements and the count per allow-list kind."""
    unexplained, used = [], collections.Counter()
    with stix_oracle.offline(), stix_oracle.fast_schemas():
        for case in cases:
            hub, oracle = validate(case.obj), stix_oracle.verdict(case.obj)
            if (hub == []) == oracle.valid:
                continue
            kind = _allowed(case, hub, oracle)
            if kind is None:
                hub_says = "hub accepts" if not hub else f"hub rejects: {hub[:2]}"
                oracle_says = (
                    "stix2-validator accepts" if oracle.valid else f"stix2-validator rejects: {oracle.errors[:2]}"
                )
                unexplained.append(f"[{case.source}] {case.label}: {hub_says}; {oracle_says}")
            else:
                used[kind] += 1
    return unexplained, used


_BASES = base_objects()
_REPORT: collections.Counter = collections.Counter()


def _check(cases: list[Case]) -> None:
    start = time.process_time()
    unexplained, used = compare(cases)
    _REPORT.update(used)
    _REPORT["(cases)"] += len(cases)
    _REPORT["(seconds)"] += time.process_time() - start
    assert not unexplained, f"{len(unexplained)} disagreements not on ALLOWED:\n" + "\n".join(unexplained[:40])


def test_real_data_verdicts_agree():
    cases = data_cases()
    assert len(cases) > 6000
    _check(cases)


def test_mutation_verdicts_agree():
    cases = mutation_cases(_BASES)
    assert len(cases) > 2500
    _check(cases)
    unused = sorted(set(ALLOWED) - set(_REPORT))
    assert not unused, f"ALLOWED entries no case needs any more (remove them): {unused}"


_MUTATIONS = [(obj, list(_mutations(obj))) for obj in _BASES]


@settings(
    max_examples=EXAMPLES or 100, derandomize=not EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(st.data())
def test_combined_mutation_verdicts_agree(data):
    base, mutations = data.draw(st.sampled_from(_MUTATIONS))
    picked = data.draw(st.lists(st.sampled_from(mutations), min_size=2, max_size=3))
    obj, what = copy.deepcopy(base), []
    for _kind, change, mutated in picked:
        # Apply each change to the object so far: the properties it changed, added or dropped.
        for name in set(base) | set(mutated):
            if name not in mutated:
                obj.pop(name, None)
            elif base.get(name, _MISSING) != mutated[name]:
                obj[name] = copy.deepcopy(mutated[name])
        what.append(change)
    _check([Case("combined", f"{base['id']} " + "; ".join(what), obj)])


_MISSING = object()


def test_the_fast_schema_loader_gives_the_librarys_own_verdicts():
    sample = [c.obj for c in mutation_cases(_BASES)[::25]] + _BASES
    with stix_oracle.offline():
        plain = [stix_oracle.verdict(obj) for obj in sample]
        with stix_oracle.fast_schemas():
            fast = [stix_oracle.verdict(obj) for obj in sample]
    assert library.load_validator is not stix_oracle._load_validator
    assert fast == plain


def test_report_the_differential(capsys):
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(_REPORT.items()) if not kind.startswith("("))
    cases, seconds = _REPORT["(cases)"], _REPORT["(seconds)"]
    with capsys.disabled():
        print(f"\nSTIX differential: {cases} objects in {seconds:.1f} s of CPU; allowed: {counts}")
