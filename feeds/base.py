"""What every import connector shares: the target, the TLP default, chunked ingest and the tally.

A connector turns its source into STIX 2.1 objects (or refusals with a reason) and hands them to
``ingest.ingest_envelope`` in chunks: the same validation, write rules and commit as a TAXII POST.
An object already stored byte-for-byte in the target collection counts as "unchanged", so running
an import twice stores nothing new and says so.

A large import is a two-stage pipeline: a worker process validates chunk N+1 (``stix.validate``,
handed over as orjson bytes, with the search terms of each valid object, ``stix.values.search_terms``)
while this process stores chunk N, each chunk in one transaction. The verdicts and terms are those of
the same functions, so the outcome is the same as validating inline.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import orjson

from hub import ingest, stix
from hub.errors import HubError
from hub.policy import TLP
from hub.progress import Report, silent
from hub.runtime import Hub
from hub.stix.values import search_terms
from hub.store import auditlog, snapshots

CHUNK = 1000
# Imports of at most this many objects validate inline: starting a worker process costs more than it saves.
PIPELINE_MIN = 2 * CHUNK
SUMMARY_REASONS = 5
AUDIT_INLINE_LIMIT = 16 * 1024
AUDIT_EVENT_LIMIT = 512 * 1024
FETCH_LIMIT = 256 * 1024 * 1024

T = TypeVar("T")


class FeedError(HubError):
    """A feed cannot run: bad source, unknown partner or collection, missing permission."""

    status = 400


@dataclass(frozen=True)
class Refusal:
    """An input item the connector itself refuses, before ingest."""

    key: str
    reason: str


@dataclass(frozen=True)
class Target:
    """Where an import writes and on whose behalf."""

    partner_pk: int
    partner_slug: str
    identity_id: str
    collection: snapshots.CollectionInfo


@dataclass
class Outcome:
    """The tally of one import run."""

    accepted: int = 0
    unchanged: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    mapped: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, str]] = field(default_factory=list)

    def refuse(self, key: str, reason: str) -> None:
        self.refused[reason] += 1
        self.refusals.append((key, reason))

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def summary(self) -> str:
        """One line: accepted / unchanged / refused, with the refusal reasons grouped."""
        line = f"{self.accepted} accepted, {self.unchanged} unchanged, {self.refused_total} refused"
        if self.refused:
            common = self.refused.most_common()
            line += ": " + "; ".join(f"{n} x {reason}" for reason, n in common[:SUMMARY_REASONS])
            if len(common) > SUMMARY_REASONS:
                line += f"; and {len(common) - SUMMARY_REASONS} other reasons"
        if self.mapped:
            line += " | lenient mappings: " + "; ".join(f"{n} x {what}" for what, n in self.mapped.most_common())
        return line


def read_source(source: str) -> bytes:
    """Read a file path or an http(s) URL; raise FeedError naming what failed."""
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - scheme checked above
                data = response.read(FETCH_LIMIT + 1)
        except OSError as exc:
            raise FeedError(f"cannot fetch {source}: {exc}") from None
        if len(data) > FETCH_LIMIT:
            raise FeedError(f"{source} is larger than {FETCH_LIMIT // (1024 * 1024)} MiB")
        return data
    if scheme not in ("", "file"):
        raise FeedError(f"unsupported source scheme {scheme!r}: give a file path or an http(s) URL")
    path = Path(urllib.parse.urlsplit(source).path if scheme == "file" else source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FeedError(f"cannot read {source}: {exc.strerror or exc}") from None


def source_name(source: str) -> str:
    """A short, stable name for a source: the file or URL path's last segment."""
    path = urllib.parse.urlsplit(source).path or source
    return Path(path).name or source


def resolve_target(hub: Hub, partner: str, collection: str, root: str) -> Target:
    """Find the partner and collection; refuse early when the partner cannot write there."""
    with hub.session(write=False) as session:
        snap = hub.snapshot(session)
        if partner not in snap.by_slug:
            raise FeedError(f"unknown partner '{partner}'")
        if root not in snap.roots:
            raise FeedError(f"unknown API root '{root}'")
        found = snap.find_collection(root, collection)
        if found is None:
            raise FeedError(f"unknown collection '{collection}' in API root '{root}'")
        who = snap.partner(partner)
        if not who.active:
            raise FeedError(f"partner '{partner}' is suspended")
        if not snap.world.granted(found.rules.writers, who):
            raise FeedError(f"partner '{partner}' does not write collection '{found.alias}' ({found.uuid})")
        row = snap.partner_rows[snap.by_slug[partner]]
        return Target(row.id, row.slug, row.identity_id, found)


def has_tlp(obj: dict) -> bool:
    refs = list(obj.get("object_marking_refs") or [])
    refs += [g.get("marking_ref") for g in obj.get("granular_markings") or [] if isinstance(g, dict)]
    return any(stix.marking_tlp(r) is not None for r in refs)


def apply_tlp(obj: dict, tlp: TLP | None) -> dict:
    """Add the TLP 2.0 marking ref when the object carries no TLP of its own."""
    if tlp is None or obj.get("type") == "marking-definition" or has_tlp(obj):
        return obj
    refs = list(obj.get("object_marking_refs") or [])
    return {**obj, "object_marking_refs": [*refs, stix.TLP2_MARKINGS[tlp]["id"]]}


def _digest(obj: Any) -> dict:
    raw = orjson.dumps(obj)
    if len(raw) <= AUDIT_INLINE_LIMIT:
        return {"original": obj}
    return {"original_sha256": hashlib.sha256(raw).hexdigest(), "original_size": len(raw)}


Verdict = tuple[list[str], int | None, list[tuple[str, str]] | None]


def validate_payload(payload: bytes) -> list[Verdict]:
    """Run in the worker process: the ``stix.validate`` verdict of each object of a JSON array and,
    when it is valid, the microseconds of its version and its search terms (``search_terms``): the
    Python work of parsing timestamps and patterns is done here, off the storing process."""
    out: list[Verdict] = []
    for obj in orjson.loads(payload):
        errors = stix.validate(obj)
        version_us, terms = None, None
        if not errors:
            try:
                version_us = stix.parse_timestamp(stix.object_version(obj))
            except ValueError:
                pass
            terms = search_terms(obj)
        out.append((errors, version_us, terms))
    return out


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass
class _Chunk:
    """One chunk on its way through the pipeline: its items, their objects, and the pending verdicts."""

    items: list[Item]
    objects: list[dict]
    raws: list[bytes | None] = field(default_factory=list)
    verdicts: Future | None = None

    def checked(self) -> list[ingest.Checked | None] | None:
        """Wait for the worker's verdicts; pair them with the serialised objects."""
        if self.verdicts is None:
            return None
        try:
            verdicts = iter(self.verdicts.result())
        except BrokenProcessPool:  # the worker died (e.g. killed for memory): validate inline
            return None
        out: list[ingest.Checked | None] = []
        for raw in self.raws:
            if raw is None:
                out.append(None)
                continue
            errors, version_us, terms = next(verdicts)
            out.append(ingest.Checked(errors, raw.decode(), version_us, terms))
        return out


def _validator() -> ProcessPoolExecutor:
    """One worker process; forked when this process has a single thread (no lock can be held)."""
    methods = multiprocessing.get_all_start_methods()
    method = "fork" if "fork" in methods and threading.active_count() == 1 else "spawn"
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(method))


@dataclass
class Item:
    """One object ready for ingest, with the source's original when the connector changed it."""

    obj: dict
    original: Any = None
    changes: tuple[str, ...] = ()


class Connector:
    """Base class: subclasses implement ``items`` (objects to ingest, or refusals)."""

    name = ""
    # The items are plain JSON values (parsed from JSON, or built of dicts, lists, str, int, float,
    # bool and None), so validating their orjson form elsewhere gives the same verdict.
    json_items = False

    def __init__(
        self,
        hub: Hub,
        target: Target,
        *,
        tlp: TLP | None = None,
        strict: bool = False,
        source_label: str = "",
        progress: Report = silent,
    ) -> None:
        self.hub, self.target, self.tlp, self.strict = hub, target, tlp, strict
        self.source_label = source_label
        self.progress = progress
        self.outcome = Outcome()

    @classmethod
    def ensure_installed(cls) -> None:
        """Raise FeedError naming the extra to install when a library this connector needs is missing."""

    def items(self, data: bytes) -> Iterable[Item | Refusal]:
        raise NotImplementedError

    def reading(self, entries: Iterable[T], total: int | None, unit: str) -> Iterator[T]:
        """Yield the source's ``entries``, reporting each one read (phase "read") before it is converted."""
        report = self.progress
        for done, entry in enumerate(entries, 1):
            report("read", done, total, unit=unit)
            yield entry

    def note(self, what: str) -> None:
        """Report a lenient mapping of a known deviation."""
        self.outcome.mapped[what] += 1

    def load(self, source: str) -> list[Item]:
        """Read and convert ``source``; refusals go straight to the tally."""
        self.source_label = self.source_label or source_name(source)
        ready: list[Item] = []
        for item in self.items(read_source(source)):
            if isinstance(item, Refusal):
                self.outcome.refuse(item.key, item.reason)
            else:
                ready.append(item)
        # Marking definitions first, so that objects in later chunks can use them.
        ready.sort(key=lambda i: i.obj.get("type") != "marking-definition")
        return ready

    def ingest(self, ready: Iterable[Item], progress: Callable[[int], None] | None = None) -> Outcome:
        """Hand the converted objects to the hub in chunks; return the tally.

        ``ready`` may be a generator: only two chunks are held at a time. With JSON items and more
        than PIPELINE_MIN of them (or an unsized stream), the next chunk is validated in a worker
        process while the current one is stored. ``progress`` is called with the size of each chunk
        stored; the connector's own reporter gets the running count (phase "store").
        """
        size = len(ready) if isinstance(ready, list | tuple) else None
        pool = _validator() if self.json_items and (size is None or size > PIPELINE_MIN) else None
        stored = 0
        self.progress("store", stored, size, unit="objects")
        try:
            chunks = _chunks(ready, CHUNK)
            current = self._start(next(chunks, None), pool)
            while current is not None:
                following = self._start(next(chunks, None), pool)  # validated while this one is stored
                self._ingest(current.items, current)
                stored += len(current.items)
                self.progress("store", stored, size, unit="objects")
                if progress is not None:
                    progress(len(current.items))
                current = following
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self._audit_run()
        return self.outcome

    def run(self, source: str) -> Outcome:
        """Import ``source``: read, convert, ingest in chunks; return the tally."""
        return self.ingest(self.load(source))

    def _start(self, items: list[Item] | None, pool: ProcessPoolExecutor | None) -> _Chunk | None:
        """Apply the TLP default to a chunk and, with a worker, send it off to be validated."""
        if items is None:
            return None
        chunk = _Chunk(items, [apply_tlp(i.obj, self.tlp) for i in items])
        if pool is not None:
            for obj in chunk.objects:
                try:
                    chunk.raws.append(orjson.dumps(obj))
                except orjson.JSONEncodeError:  # validated inline, where the error is reported
                    chunk.raws.append(None)
            payload = b"[" + b",".join(raw for raw in chunk.raws if raw is not None) + b"]"
            chunk.verdicts = pool.submit(validate_payload, payload)
        return chunk

    def _ingest(self, items: list[Item], chunk: _Chunk | None = None) -> None:
        chunk = chunk or _Chunk(items, [apply_tlp(i.obj, self.tlp) for i in items])
        objects = chunk.objects
        result = ingest.ingest_envelope(
            self.hub,
            self.target.partner_pk,
            self.target.collection.uuid,
            objects,
            checked=chunk.checked(),
            notes=False,  # the tally reports no warninglist notes
        )
        unchanged = {(key["id"], key["version"]) for key in result.unchanged}
        by_key = {(o["id"], stix.object_version(o)): (o, item) for o, item in zip(objects, items, strict=True)}
        fresh = []
        for key in result.successes:
            obj, item = by_key[(key["id"], key["version"])]
            if (key["id"], key["version"]) in unchanged:
                self.outcome.unchanged += 1
            else:
                self.outcome.accepted += 1
                fresh.append((obj, item))
        for failure in result.failures:
            self.outcome.refuse(failure["id"], failure["message"])
        self._audit_originals(fresh)

    def _audit_originals(self, fresh: list[tuple[dict, Item]]) -> None:
        """Keep the source's original of every object the connector changed, in the audit trail.

        Originals are grouped into events of at most about AUDIT_EVENT_LIMIT bytes: one event per
        object would cost a chained audit write each.
        """
        changed = [(obj, item) for obj, item in fresh if item.original is not None or obj != item.obj]
        events: list[dict] = []
        size = AUDIT_EVENT_LIMIT
        for obj, item in changed:
            entry = {
                "changes": list(item.changes) or ["TLP marking added"],
                **_digest(item.original if item.original is not None else item.obj),
            }
            entry_size = len(orjson.dumps(entry))
            if size + entry_size > AUDIT_EVENT_LIMIT:
                events.append({})
                size = 0
            events[-1][obj["id"]] = entry
            size += entry_size
        if not events:
            return
        with self.hub.session() as session:
            for objects in events:
                auditlog.audit(
                    session,
                    self.target.partner_slug,
                    "feed.import.originals",
                    self.source_label[:200],
                    {"connector": self.name, "collection": self.target.collection.uuid, "objects": objects},
                )

    def _audit_run(self) -> None:
        o = self.outcome
        with self.hub.session() as session:
            auditlog.audit(
                session,
                self.target.partner_slug,
                "feed.import",
                self.source_label[:200],
                {
                    "connector": self.name,
                    "collection": self.target.collection.uuid,
                    "accepted": o.accepted,
                    "unchanged": o.unchanged,
                    "refused": dict(o.refused),
                    "mapped": dict(o.mapped),
                },
            )
