"""Deterministic, DPRK-themed STIX 2.1 content for the demo and the benchmark.

Everything here is generated: observable values come only from documentation and
benchmarking address ranges (RFC 5737, RFC 2544) and reserved names (RFC 2606,
RFC 6761), hashes and wallet addresses are pseudo-random, so nothing points at a
real host. Objects are plain dicts (no ``stix2`` objects) because the benchmark
needs a million object versions quickly; the same arguments always give the same
bytes.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from bisect import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from hub.demo.observables import KINDS, observable
from hub.ids import DEMO_NAMESPACE
from hub.policy import TLP

TLP2_IDS: dict[TLP, str] = {
    TLP.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TLP.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TLP.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TLP.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TLP.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

DEFAULT_TLP_MIX: Mapping[TLP, float] = {
    TLP.CLEAR: 0.10,
    TLP.GREEN: 0.45,
    TLP.AMBER: 0.35,
    TLP.AMBER_STRICT: 0.08,
    TLP.RED: 0.02,
}


# Fixed so that ids never change between releases.
_ACTORS_CREATED = "2024-01-01T00:00:00.000Z"
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Publisher:
    """A partner that publishes generated objects."""

    slug: str
    identity_id: str


@dataclass(frozen=True)
class _Actor:
    """A DPRK intrusion set and the vocabulary its generated indicators use."""

    name: str
    aliases: tuple[str, ...]
    attack_id: str
    description: str
    motivation: str
    goals: tuple[str, ...]
    campaigns: tuple[str, ...]
    malware: tuple[str, ...]
    weight: float

    @cached_property
    def id(self) -> str:
        return "intrusion-set--" + _uuid5("intrusion-set/" + self.name)

    @cached_property
    def label(self) -> str:
        return self.name.lower().replace(" ", "-")


_ACTORS: tuple[_Actor, ...] = (
    _Actor(
        "Lazarus Group",
        (
            "Labyrinth Chollima",
            "HIDDEN COBRA",
            "Guardians of Peace",
            "ZINC",
            "NICKEL ACADEMY",
            "Diamond Sleet",
        ),
        "G0032",
        "DPRK state-sponsored group attributed to the Reconnaissance General Bureau; espionage, "
        "destructive attacks and theft, often through fake job offers to defence and aerospace staff.",
        "organizational-gain",
        ("espionage", "financial theft", "sabotage"),
        ("Operation DreamJob", "Operation In(ter)ception", "Operation Sharpshooter", "DeathNote"),
        ("BLINDINGCAN", "ThreatNeedle", "DRATzarus", "Manuscrypt", "LightlessCan"),
        0.26,
    ),
    _Actor(
        "APT38",
        (
            "BlueNoroff",
            "Stardust Chollima",
            "BeagleBoyz",
            "NICKEL GLADSTONE",
            "Sapphire Sleet",
            "COPERNICIUM",
        ),
        "G0082",
        "Financially motivated DPRK group targeting banks, SWIFT systems, cryptocurrency exchanges "
        "and DeFi projects to raise revenue for the regime.",
        "organizational-gain",
        ("revenue generation", "cryptocurrency theft"),
        ("FASTCash", "SnatchCrypto", "RustBucket", "Hidden Risk"),
        ("RustBucket", "KANDYKORN", "ObjCShellz", "HOPLIGHT"),
        0.16,
    ),
    _Actor(
        "Kimsuky",
        ("Velvet Chollima", "Black Banshee", "THALLIUM", "Emerald Sleet", "APT43", "TA427", "Springtail"),
        "G0094",
        "DPRK intelligence-collection group spear-phishing government, think-tank, academic and "
        "nuclear-policy experts, largely in South Korea, Japan and the United States.",
        "organizational-gain",
        ("espionage", "credential harvesting"),
        ("Operation Kabar Cobra", "Operation Smoke Screen", "BabyShark", "AppleSeed"),
        ("BabyShark", "AppleSeed", "GoldDragon", "RandomQuery"),
        0.20,
    ),
    _Actor(
        "APT37",
        ("ScarCruft", "Reaper", "Group123", "TEMP.Reaper", "InkySquid", "Ricochet Chollima"),
        "G0067",
        "DPRK espionage group focused on South Korean government, defectors, journalists and "
        "human-rights activists, using watering holes and malicious HWP documents.",
        "organizational-gain",
        ("espionage", "surveillance of defectors"),
        ("Operation Daybreak", "Operation Erebus", "Operation Evil New Year", "Golden Time"),
        ("RokRAT", "Chinotto", "Dolphin", "BLUELIGHT"),
        0.12,
    ),
    _Actor(
        "Andariel",
        ("Silent Chollima", "PLUTONIUM", "Onyx Sleet", "Stonefly"),
        "G0138",
        "Lazarus sub-group targeting South Korean and allied defence, healthcare and government "
        "networks for espionage and ransomware revenue.",
        "organizational-gain",
        ("espionage", "ransomware revenue"),
        ("Maui ransomware", "Log4Shell exploitation", "defence R&D intrusions"),
        ("DTrack", "Maui", "TigerRAT", "EarlyRat"),
        0.10,
    ),
    _Actor(
        "Moonstone Sleet",
        ("Storm-1789",),
        "G1036",
        "DPRK group mixing espionage and revenue generation through trojanized software, fake "
        "game companies and custom ransomware.",
        "organizational-gain",
        ("espionage", "revenue generation"),
        ("DeTankWar", "trojanized PuTTY", "malicious npm packages"),
        ("FakePenny", "YouieLoad"),
        0.07,
    ),
    _Actor(
        "Famous Chollima",
        ("Jasper Sleet", "UNC5267", "Wagemole", "Nickel Tapestry"),
        "",
        "DPRK IT-worker network: operatives using false identities get remote IT jobs at foreign "
        "companies, send wages to the regime and sometimes steal data or extort employers.",
        "organizational-gain",
        ("revenue generation", "insider access"),
        ("remote IT worker fraud", "Contagious Interview", "laptop farm"),
        ("BeaverTail", "InvisibleFerret", "OtterCookie"),
        0.09,
    ),
)

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122 variant bits 10xx


_NAMESPACE_HASH = hashlib.sha1(DEMO_NAMESPACE.bytes)  # noqa: S324 - RFC 4122 defines uuid5 with SHA-1


def _uuid5(name: str) -> str:
    """Return ``str(uuid.uuid5(DEMO_NAMESPACE, name))`` without building UUID objects."""
    digest = _NAMESPACE_HASH.copy()
    digest.update(name.encode())
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def actors() -> list[dict]:
    """Return the DPRK intrusion sets, with stable ids, marked TLP:CLEAR."""
    return [_actor_object(actor) for actor in _ACTORS]


def _actor_object(actor: _Actor) -> dict:
    """Build one intrusion-set dict."""
    obj: dict = {
        "type": "intrusion-set",
        "spec_version": "2.1",
        "id": actor.id,
        "created": _ACTORS_CREATED,
        "modified": _ACTORS_CREATED,
        "name": actor.name,
        "description": actor.description,
        "aliases": list(actor.aliases),
        "goals": list(actor.goals),
        "resource_level": "government",
        "primary_motivation": actor.motivation,
        "object_marking_refs": [TLP2_IDS[TLP.CLEAR]],
    }
    if actor.attack_id:
        obj["external_references"] = [
            {
                "source_name": "mitre-attack",
                "external_id": actor.attack_id,
                "url": f"https://attack.mitre.org/groups/{actor.attack_id}/",
            }
        ]
    return obj


def sharing_marking(
    *,
    marking_id: str,
    name: str,
    extension_id: str,
    partners: Iterable[str] = (),
    groups: Iterable[str] = (),
    countries: Iterable[str] = (),
    exclude_partners: Iterable[str] = (),
    no_federation: bool = False,
    created: str = "2024-01-01T00:00:00.000Z",
) -> dict:
    """Build a sharing-restriction marking-definition in the hub's extension shape."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": created,
        "name": name,
        "extensions": {
            extension_id: {
                "extension_type": "property-extension",
                "share_with": {
                    "partners": list(partners),
                    "groups": list(groups),
                    "countries": list(countries),
                },
                "exclude_partners": list(exclude_partners),
                "no_federation": bool(no_federation),
            }
        },
    }


def envelope_chunks(objects: Iterable[dict], size: int) -> Iterator[dict]:
    """Group objects into TAXII envelopes of at most ``size`` objects."""
    if size < 1:
        raise ValueError("envelope size must be at least 1")
    batch: list[dict] = []
    for obj in objects:
        batch.append(obj)
        if len(batch) == size:
            yield {"objects": batch}
            batch = []
    if batch:
        yield {"objects": batch}


# --- the stream ---------------------------------------------------------------------------------------


def _cumulative(weights: Sequence[float]) -> list[float]:
    """Return normalised cumulative weights for ``bisect``."""
    total = sum(weights)
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative and not all zero")
    out, running = [], 0.0
    for w in weights:
        running += w
        out.append(running / total)
    out[-1] = 1.0
    return out


def _parse_ms(text: str) -> int:
    """Return an RFC 3339 timestamp as epoch milliseconds."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


class _Timestamps:
    """Format epoch milliseconds as STIX timestamps from small lookup tables (strftime is too slow)."""

    _MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
    _SECONDS = tuple(f"{s:02d}." for s in range(60))
    _MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        day, rest = divmod(ms, _DAY_MS)
        date = self._days.get(day)
        if date is None:
            date = (datetime(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m-%dT")
            self._days[day] = date
        seconds, milli = divmod(rest, 1000)
        minutes, sec = divmod(seconds, 60)
        return date + self._MINUTES[minutes] + self._SECONDS[sec] + self._MILLIS[milli]


class _Stream:
    """The state of one ``indicators()`` run."""

    def __init__(
        self,
        publishers: Sequence[Publisher],
        seed: int,
        start: str,
        tlp_mix: Mapping[TLP, float],
        sharing: Sequence[str],
        sharing_ratio: float,
        versions_ratio: float,
        relationships: bool,
    ) -> None:
        if not publishers:
            raise ValueError("at least one publisher is needed")
        self.rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
        self.seed = seed
        self.publishers = [p.identity_id for p in publishers]
        self.now = _parse_ms(start)
        self.ts = _Timestamps()
        self.tlp_levels = list(TLP)
        self.tlp_cum = _cumulative([tlp_mix.get(level, 0.0) for level in self.tlp_levels])
        self.sharing = list(sharing)
        self.sharing_ratio = sharing_ratio
        self.versions_ratio = versions_ratio
        self.relationships = relationships
        self.actor_cum = _cumulative([a.weight for a in _ACTORS])
        self.kind_cum = _cumulative([k[1] for k in KINDS])
        self.serial = 0
        self.pending: list[tuple[int, int, dict]] = []  # (due position, serial, object to re-version)

    def tick(self) -> str:
        """Advance the clock 1-66 s (so every timestamp is strictly later) and return it."""
        self.now += 1000 + self.rng.getrandbits(16)
        return self.ts(self.now)

    def markings(self) -> list[str]:
        """Draw a TLP marking, plus a sharing marking for RED and for a ``sharing_ratio`` share."""
        level = self.tlp_levels[bisect(self.tlp_cum, self.rng.random())]
        if level is TLP.RED and not self.sharing:
            level = TLP.AMBER  # a RED object must name its recipients, and there is nothing to name them with
        refs = [TLP2_IDS[level]]
        if self.sharing and (level is TLP.RED or self.rng.random() < self.sharing_ratio):
            refs.append(self.sharing[self.rng.getrandbits(16) % len(self.sharing)])
        return refs

    def indicator(self, position: int) -> tuple[dict, _Actor]:
        """Build a new indicator and maybe schedule its next version."""
        rng = self.rng
        actor = _ACTORS[bisect(self.actor_cum, rng.random())]
        kind, _, roles = KINDS[bisect(self.kind_cum, rng.random())]
        role, indicator_type = roles[rng.getrandbits(16) % len(roles)]
        campaign = actor.campaigns[rng.getrandbits(16) % len(actor.campaigns)]
        if kind == "file":
            role = f"{actor.malware[rng.getrandbits(16) % len(actor.malware)]} {role}"
        pattern, value = observable(rng, kind)
        now = self.tick()
        self.serial += 1
        obj = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--" + _uuid5(f"indicator/{self.seed}/{self.serial}"),
            "created": now,
            "modified": now,
            "name": f"{actor.name} {role}: {value}",
            "description": f"{actor.name} {campaign}: {role}. Synthetic demo indicator generated by cti-hub.",
            "indicator_types": [indicator_type],
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": self.ts(self.now - rng.getrandbits(28)),  # first seen up to ~3 days earlier
            "confidence": 30 + 5 * (rng.getrandbits(16) % 14),
            "labels": ["dprk", actor.label, kind],
            "created_by_ref": self.publishers[rng.getrandbits(16) % len(self.publishers)],
            "object_marking_refs": self.markings(),
        }
        if rng.getrandbits(2) == 0:  # a quarter of indicators expire
            obj["valid_until"] = self.ts(self.now + (30 + rng.getrandbits(16) % 336) * _DAY_MS)
        self.schedule(obj, position)
        return obj, actor

    def schedule(self, obj: dict, position: int) -> None:
        """Queue a later version of ``obj`` for a ``versions_ratio`` share of objects."""
        if self.rng.random() < self.versions_ratio:
            due = position + 10 + self.rng.getrandbits(10)
            heapq.heappush(self.pending, (due, self.serial, obj))

    def relationship(self, indicator: dict, actor: _Actor) -> dict:
        """Build ``indicator indicates actor`` with the indicator's originator and markings."""
        now = self.tick()
        return {
            "type": "relationship",
            "spec_version": "2.1",
            "id": "relationship--" + _uuid5(f"relationship/{self.seed}/{self.serial}"),
            "created": now,
            "modified": now,
            "relationship_type": "indicates",
            "source_ref": indicator["id"],
            "target_ref": actor.id,
            "created_by_ref": indicator["created_by_ref"],
            "object_marking_refs": list(indicator["object_marking_refs"]),
        }

    def new_version(self, previous: dict, position: int) -> dict:
        """Build the next version of ``previous``: new confidence, new expiry or revocation."""
        obj = dict(previous)
        obj["modified"] = self.tick()
        change = self.rng.getrandbits(3)
        if change == 0:
            obj["revoked"] = True
            return obj  # a revoked object gets no further versions
        if change < 4:
            obj["confidence"] = max(5, min(100, previous["confidence"] + (-20, -10, 10)[change - 1]))
        else:
            obj["valid_until"] = self.ts(self.now + (7 + change * 20) * _DAY_MS)
        self.serial += 1  # only orders the heap; ids come from the original's serial
        self.schedule(obj, position)
        return obj

    def run(self, count: int) -> Iterator[dict]:
        """Yield ``count`` objects: indicators, their relationships and their later versions."""
        position = 0
        while position < count:
            if self.pending and self.pending[0][0] <= position:
                yield self.new_version(heapq.heappop(self.pending)[2], position)
                position += 1
                continue
            obj, actor = self.indicator(position)
            yield obj
            position += 1
            if self.relationships and position < count and self.rng.getrandbits(16) % 5 == 0:
                yield self.relationship(obj, actor)
                position += 1


def indicators(
    count: int,
    *,
    publishers: Sequence[Publisher],
    seed: int = 1,
    start: str = "2024-01-01T00:00:00.000Z",
    tlp_mix: Mapping[TLP, float] | None = None,
    sharing_markings: Sequence[str] = (),
    sharing_ratio: float = 0.0,
    versions_ratio: float = 0.05,
    relationships: bool = True,
) -> Iterator[dict]:
    """Yield ``count`` deterministic STIX 2.1 objects: indicators, relationships and later versions.

    Args:
        count: number of objects (every version and relationship counts as one).
        publishers: partners whose identity ids become ``created_by_ref``, drawn uniformly.
        seed: stream seed; ids derive from it, so independent streams need different seeds.
        start: timestamp of the stream's first object; each object is 1-66 s after the previous.
        tlp_mix: weight per TLP level (missing levels weigh 0); default ``DEFAULT_TLP_MIX``.
        sharing_markings: ids of sharing-marking definitions; RED objects always carry one,
            so pass markings that name partners. Without any, RED objects become AMBER.
        sharing_ratio: share of non-RED objects that also carry one sharing marking.
        versions_ratio: share of indicators (and of their versions) re-published later.
        relationships: follow about one indicator in five by an ``indicates`` relationship.
    """
    stream = _Stream(
        publishers,
        seed,
        start,
        DEFAULT_TLP_MIX if tlp_mix is None else tlp_mix,
        sharing_markings,
        sharing_ratio,
        versions_ratio,
        relationships,
    )
    return stream.run(count)
