"""Real TAXII 2.1 client libraries, installed from PyPI, drive the real server (gunicorn) on both engines.

Each test publishes a mix of objects into the shipped demo world: some the consumer may receive, some
restricted to the ROK-US trust group by its ready-made sharing marking, some above the consumer's
clearance. It then lets the client library fetch them its own way and checks that exactly the visible
ids and versions arrived: taxii2-client (``Server``/``ApiRoot``/``Collection``, ``as_pages``, Basic and
``TokenAuth``), stix2's TAXII data stores, cytaxii2's README poll loop, misp-modules' ``taxii21`` import
module, and the request sequences of OpenCTI's ``taxii2`` external-import connector.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests
from taxii2client.common import TokenAuth
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from hub import ingest, sharing
from hub.runtime import Hub
from tests import factories as f

pytestmark = pytest.mark.slow

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
ROK_US = sharing.group_marking_id("rok-us")
ROK_US_MEMBERS = frozenset({"krcert", "cisa", "ncsc-kr"})
PAGE_CAP = 25  # the server's max_page_size here, so that limit=1000 and limit=5000 are cut to it
LATER = "2024-06-01T00:00:00.000Z"

Pairs = set[tuple[str, str]]


@dataclass
class World:
    """The running server, partner keys, and every version published, each with the slugs that may see it."""

    base: str
    keys: dict[str, str]
    ids: dict[str, str]
    hub: Hub
    n: int = 0
    objects: dict[str, dict] = field(default_factory=dict)
    versions: list[tuple[str, str, str, frozenset[str]]] = field(default_factory=list)  # alias, id, modified, who

    def url(self, alias: str) -> str:
        return f"{self.base}/dprk/collections/{self.ids[alias]}/"

    def publish(
        self, alias: str, count: int, audience: Iterable[str], *, markings: Iterable[str] = (), slug: str = "krcert"
    ) -> list[dict]:
        """Publish ``count`` new indicators into ``alias`` as ``slug``; ``audience`` names who may see them."""
        objs = [f.indicator(self.n + i, markings=list(markings)) for i in range(count)]
        self.n += count
        self._ingest(alias, objs, audience, slug)
        return objs

    def new_versions(self, alias: str, objs: Iterable[dict], modified: str = LATER) -> list[dict]:
        """Publish a later version of each object, keeping its audience."""
        newer = [{**o, "modified": modified} for o in objs]
        who = {i: a for _, i, _, a in self.versions}
        for obj in newer:
            self._ingest(alias, [obj], who[obj["id"]], "krcert")
        return newer

    def _ingest(self, alias: str, objs: list[dict], audience: Iterable[str], slug: str) -> None:
        with self.hub.session(write=False) as s:
            pk = self.hub.snapshot(s).by_slug[slug]
        result = ingest.ingest_envelope(self.hub, pk, self.ids[alias], objs)
        assert not result.failures, result.failures
        for obj in objs:
            self.objects[obj["id"]] = obj
            self.versions.append((alias, obj["id"], obj["modified"], frozenset(audience) | {slug}))

    def all_versions(self, slug: str, alias: str) -> Pairs:
        return {(i, m) for a, i, m, who in self.versions if a == alias and slug in who}

    def latest(self, slug: str, alias: str) -> Pairs:
        newest: dict[str, str] = {}
        for i, m in self.all_versions(slug, alias):
            newest[i] = max(m, newest.get(i, m))
        return set(newest.items())

    def hidden(self, slug: str, alias: str) -> set[str]:
        return {i for a, i, _, who in self.versions if a == alias and slug not in who}


@pytest.fixture
def world(monkeypatch, request) -> World:
    """The demo world on gunicorn with a small max_page_size; keys for krcert, cisa, singcert and mmcert."""
    monkeypatch.setenv("CTI_HUB_MAX_PAGE_SIZE", str(PAGE_CAP))
    base, keys, ids = request.getfixturevalue("live")
    hub = request.getfixturevalue("hub")
    keys["mmcert"] = f.key_for(hub, "mmcert")
    return World(base, keys, ids, hub)


def seed_regional(w: World) -> list[dict]:
    """regional (TLP:AMBER): AMBER for singcert, GREEN for mmcert too, ROK-US only; some with two versions."""
    amber = w.publish("regional", 30, {"singcert", "cisa"})
    green = w.publish("regional", 8, {"singcert", "mmcert", "cisa"}, markings=[GREEN])
    rok_us = w.publish("regional", 8, ROK_US_MEMBERS, markings=[ROK_US])
    w.new_versions("regional", [*amber[:4], green[0], *rok_us[:2]])
    return amber


def pairs(envelopes: Iterable[dict]) -> list[tuple[str, str]]:
    return [(o["id"], o.get("modified", o["created"])) for e in envelopes for o in e.get("objects", [])]


def once(received: list[tuple[str, str]]) -> Pairs:
    assert [p for p, n in Counter(received).items() if n > 1] == [], "a version arrived twice in one read"
    return set(received)


def test_taxii2_client_pages_with_basic_and_token_auth(world):
    seed_regional(world)
    regional_id = world.ids["regional"]
    for auth in ({"user": "singcert", "password": world.keys["singcert"]}, {"auth": TokenAuth(world.keys["singcert"])}):
        with Server(f"{world.base}/taxii2/", **auth) as server:
            (root,) = [r for r in server.api_roots if r.url == f"{world.base}/dprk/"]
            listed = {c.id: c for c in root.collections}
            assert regional_id in listed and world.ids["rok-us"] not in listed
            regional = listed[regional_id]
            assert regional.can_read and regional.can_write
            for size in (1, 7, 1000, 5000):
                got = once(pairs(as_pages(regional.get_objects, per_request=size)))
                assert got == world.latest("singcert", "regional"), size
            every = once(pairs(as_pages(regional.get_objects, per_request=7, version="all")))
            assert every == world.all_versions("singcert", "regional")
            manifest = [
                (m["id"], m["version"])
                for page in as_pages(regional.get_manifest, per_request=9)
                for m in page.get("objects", [])
            ]
            assert once(manifest) == world.latest("singcert", "regional")
            for hidden in sorted(world.hidden("singcert", "regional"))[:3]:
                with pytest.raises(requests.HTTPError) as caught:
                    regional.object_versions(hidden)
                assert caught.value.response.status_code == 404
    # A partner cleared only for TLP:GREEN receives only the GREEN-marked objects, through ApiRoot and Collection.
    with ApiRoot(f"{world.base}/dprk/", user="mmcert", password=world.keys["mmcert"]) as root:
        assert regional_id in {c.id for c in root.collections}
    with Collection(world.url("regional"), user="mmcert", password=world.keys["mmcert"]) as regional:
        got = once(pairs(as_pages(regional.get_objects, per_request=7, version="all")))
        assert got == world.all_versions("mmcert", "regional") and len(got) == 9


def test_stix2_taxii_collection_source_sink_and_store(world):
    import stix2
    from stix2 import Filter, TAXIICollectionSink, TAXIICollectionSource, TAXIICollectionStore

    amber = seed_regional(world)
    malware = {
        "type": "malware",
        "spec_version": "2.1",
        "id": "malware--2f6e6a4c-05f4-4c8e-9d1b-1d9c6f1b4a11",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "name": "AppleJeus",
        "is_family": True,
    }
    world._ingest("regional", [malware], {"singcert", "cisa"}, "krcert")
    hidden = sorted(world.hidden("singcert", "regional"))
    with Collection(world.url("regional"), user="singcert", password=world.keys["singcert"]) as coll:
        source = TAXIICollectionSource(coll, items_per_page=10)
        indicators = source.query([Filter("type", "=", "indicator")])
        assert {(o.id, o.modified.strftime("%Y-%m-%dT%H:%M:%S.000Z")) for o in indicators} == {
            p for p in world.latest("singcert", "regional") if p[0].startswith("indicator--")
        }
        assert [o.id for o in source.query([Filter("type", "=", "malware")])] == [malware["id"]]
        named = source.query([Filter("type", "=", "indicator"), Filter("name", "=", amber[5]["name"])])
        assert [o.id for o in named] == [amber[5]["id"]]
        assert source.get(amber[0]["id"]).modified == stix2.utils.parse_into_datetime(LATER)
        assert source.get(hidden[0]) is None
        assert sorted(str(o.modified) for o in source.all_versions(amber[0]["id"])) == [
            "2024-05-01 00:00:00+00:00",
            "2024-06-01 00:00:00+00:00",
        ]
        assert source.all_versions(hidden[0]) == []

        # Sink and Store POST STIX bundles; what they add is served back under the sharing rules.
        sink = TAXIICollectionSink(coll)
        posted = stix2.Indicator(
            name="Kimsuky phishing domain",
            pattern="[domain-name:value = 'kimsuky.example']",
            pattern_type="stix",
            valid_from=f.CLOCK,
        )
        sink.add(posted)
        store = TAXIICollectionStore(coll, items_per_page=1000)
        store.add([stix2.Bundle(malware_obj := stix2.Malware(name="BabyShark", is_family=True))])
        assert store.get(posted.id).name == "Kimsuky phishing domain"
        assert store.get(malware_obj.id).name == "BabyShark"
        assert {o.id for o in store.query([Filter("type", "=", "malware")])} == {malware["id"], malware_obj.id}
        assert len(store.all_versions(posted.id)) == 1
    with Collection(world.url("regional"), user="mmcert", password=world.keys["mmcert"]) as coll:
        green_only = TAXIICollectionSource(coll)
        assert green_only.get(posted.id) is None  # TLP:AMBER by the collection's default, above mmcert's clearance
        assert {o.id for o in green_only.query([Filter("type", "=", "malware")])} == set()


def cytaxii2_poll_all(client, collection_id: str, **filters) -> list[tuple[str, str]]:
    """The README's poll loop: ``next = 0`` first, then the cursor each answer returns, until there is none."""
    received, next_ = [], 0
    while True:
        answer = client.poll_request(collection_id=collection_id, next=next_, **filters)
        assert answer["status"] is True and answer["status_code"] == 200, answer
        received += pairs([answer["response"]])
        next_ = answer["response"].get("next")
        if not next_:
            return received


def test_cytaxii2_readme_poll_loop_and_inbox(world):
    from cytaxii2 import cytaxii2

    seed_regional(world)
    client = cytaxii2.cytaxii2(f"{world.base}/taxii2/", "singcert", world.keys["singcert"], version=2.1)
    assert client.discovery_request()["response"]["default"] == f"{world.base}/dprk/"
    listed = {c["id"] for c in client.collection_request()["response"]["collections"]}
    assert world.ids["regional"] in listed and world.ids["rok-us"] not in listed
    regional = world.ids["regional"]
    assert once(cytaxii2_poll_all(client, regional)) == world.latest("singcert", "regional")
    assert once(cytaxii2_poll_all(client, regional, limit=4, object_type="indicator")) == world.latest(
        "singcert", "regional"
    )
    # Inbox: the README's envelope, with the "more" and "next" members it copies from a poll answer.
    objs = [f.indicator(900 + n) for n in range(3)]
    envelope = orjson.dumps({"objects": objs, "more": True, "next": "32768"}).decode()
    answer = client.inbox_request(collection_id=regional, stix_bundle=envelope)
    assert answer["status_code"] == 202 and answer["response"]["success_count"] == 3, answer
    world.versions += [("regional", o["id"], o["modified"], frozenset({"singcert", "cisa"})) for o in objs]
    assert once(cytaxii2_poll_all(client, regional, limit=10)) == world.latest("singcert", "regional")


def misp_attributes(result: dict) -> dict[str, dict]:
    """The MISP attributes the module returned, by the STIX id they came from."""
    assert "error" not in result, result
    assert result["results"]["Object"] == []  # single-observable patterns become plain attributes
    return {f"indicator--{a['uuid']}": a for a in result["results"]["Attribute"]}


def assert_misp_got(result: dict, expected: Pairs, world: World) -> None:
    """Exactly the expected indicators arrived, each as its latest version (MISP keeps no version history)."""
    got = misp_attributes(result)
    assert set(got) == {i for i, _ in expected}
    for stix_id, modified in expected:
        attribute = got[stix_id]
        assert attribute["value"] == world.objects[stix_id]["pattern"].split("'")[1]
        if GREEN in world.objects[stix_id].get("object_marking_refs", []):
            assert attribute["Tag"] == [{"name": "tlp:green"}]
        else:  # misp-stix leaves the timestamp out of tagged attributes
            assert attribute["timestamp"] == str(int(datetime.fromisoformat(modified).timestamp()))


def test_misp_modules_taxii21_import(world):
    from misp_modules.modules.import_mod import taxii21

    seed_regional(world)
    config = {"url": world.url("regional"), "username": "singcert", "password": world.keys["singcert"]}
    result = taxii21.handler(orjson.dumps({"config": config}).decode())
    assert_misp_got(result, world.latest("singcert", "regional"), world)
    # An incremental pull: added_after the previous pull, indicators only.
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    before = world.latest("singcert", "regional")
    world.publish("regional", 6, {"singcert", "cisa"})
    world.publish("regional", 2, ROK_US_MEMBERS, markings=[ROK_US])
    config = {**config, "added_after": since, "type": "indicator"}
    result = taxii21.handler(orjson.dumps({"config": config}).decode())
    assert_misp_got(result, world.latest("singcert", "regional") - before, world)
    wrong = taxii21.handler(orjson.dumps({"config": {**config, "password": "chub_wrong"}}).decode())
    assert wrong == {"error": "Access was denied."}


class OpenCtiTaxii2Sequence:
    """The request sequence of OpenCTI's ``taxii2`` external-import connector (connectors repository,
    ``external-import/taxii2/src/connector/``), on taxii2-client, as it behaves when it runs on a schedule.

    One filter dict lives as long as the connector process and is shared by every collection it polls.
    Each run sets ``limit`` and ``added_after`` (the start of the previous run, in whole seconds, written
    ``%Y-%m-%dT%H:%M:%S.%fZ``; on the first run a naive datetime ``initial_history`` hours back) and
    leaves the previous run's last ``next`` in place. While an answer says ``more``, it drops
    ``added_after`` and sends the answer's ``next`` with the rest, so the next collection it polls in the
    same run starts with the previous collection's ``next`` and no ``added_after``. It stores the run's
    start as its state whatever the answers were. An error answer here fails the test instead of being
    logged, and every answer's ``X-CTI-Hub-Next-Ignored`` header is counted.
    """

    def __init__(self, server: Server, limit: int, initial_history_hours: int = 24) -> None:
        self.server = server
        self.limit = limit
        self.initial_history = initial_history_hours
        self.filters: dict = {}
        self.last_run: int | None = None
        self.ignored: Counter[str] = Counter()

    def _count_ignored(self, response: requests.Response, *args, **kwargs) -> None:
        if reason := response.headers.get("X-CTI-Hub-Next-Ignored"):
            self.ignored[reason] += 1

    def run(self, collections: str) -> list[tuple[str, str]]:
        """One scheduled run over ``root.collection``, ``root.*`` or ``*.*``; the (id, modified) pairs it imported.

        Runs are hours apart in production; here each starts in a later second than the one before, so that
        its ``added_after`` (whole seconds) differs from the previous run's.
        """
        if self.last_run is not None:
            time.sleep(max(0.0, self.last_run + 1 - time.time()))
        started = datetime.now(UTC)
        self.filters["limit"] = self.limit
        if self.last_run is None:
            self.filters["added_after"] = datetime.now() - timedelta(hours=self.initial_history)
        else:
            since = datetime.fromtimestamp(self.last_run, tz=UTC)
            self.filters["added_after"] = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        root_path, title = collections.split(".")
        roots = [r for r in self.server.api_roots if root_path == "*" or r.url.split("/")[-2] == root_path]
        received: list[tuple[str, str]] = []
        for root in roots:
            for coll in root.collections:
                if title in ("*", coll.title):
                    received += self._poll(coll)
        self.last_run = int(started.timestamp())
        return received

    def _poll(self, coll: Collection) -> list[tuple[str, str]]:
        hooks = coll._conn.session.hooks["response"]  # each ApiRoot has its own connection
        if self._count_ignored not in hooks:
            hooks.append(self._count_ignored)
        answer = coll.get_objects(**self.filters)
        if not answer.get("objects"):
            return []
        assert answer["objects"][0].get("spec_version") == "2.1"  # else the connector pages the TAXII 2.0 way
        received = pairs([answer])
        while answer.get("more") is True and "next" in answer:
            self.filters.pop("added_after", None)
            self.filters["next"] = answer["next"]
            answer = coll.get_objects(**self.filters)
            received += pairs([answer])
        return received


def assert_nothing_hidden(world: World, slug: str, received: Iterable[tuple[str, str]], others: set[str]) -> None:
    """Every version received is one ``slug`` may see, in the collection it was published in (or one of ``others``)."""
    visible = {p for a in world.ids for p in world.all_versions(slug, a)}
    leaked = {p for p in received if p[0] in world.objects and p not in visible}
    assert leaked == set(), f"{slug} received versions it may not see"
    assert {i for i, _ in received if i not in world.objects} <= others


def test_opencti_taxii2_connector_one_collection_over_five_runs(world):
    """Five scheduled runs on ``dprk.<regional title>`` with limit 10: stale ``next`` plus a new ``added_after``."""
    seed_regional(world)
    with Server(f"{world.base}/taxii2/", user="singcert", password=world.keys["singcert"]) as server:
        title = next(c.title for r in server.api_roots for c in r.collections if c.id == world.ids["regional"])
        connector = OpenCtiTaxii2Sequence(server, limit=10)
        imported: set[tuple[str, str]] = set()
        between = [
            lambda: (
                world.publish("regional", 12, {"singcert", "cisa"})
                + world.publish("regional", 3, ROK_US_MEMBERS, markings=[ROK_US])
                + world.new_versions("regional", world.publish("regional", 2, {"singcert"}), "2024-07-01T00:00:00.000Z")
            ),
            lambda: [],
            lambda: (
                world.publish("regional", 31, {"singcert", "mmcert"}, markings=[GREEN])
                + world.publish("regional", 4, ROK_US_MEMBERS, markings=[ROK_US])
            ),
            lambda: world.new_versions("regional", list(world.objects.values())[:6], "2024-08-01T00:00:00.000Z"),
        ]
        for run in range(5):
            published = (
                {(o["id"], o["modified"]) for o in between[run - 1]()} if run else world.latest("singcert", "regional")
            )
            got = connector.run(f"dprk.{title}")
            visible_new = published & world.all_versions("singcert", "regional")
            assert visible_new <= set(got), f"run {run + 1} missed objects published since the previous run"
            imported |= set(got)
            assert world.latest("singcert", "regional") <= imported, f"run {run + 1}"
            assert_nothing_hidden(world, "singcert", got, set())
        assert connector.ignored == {"filters": 4}  # runs 2 to 5 each resent an earlier run's last next


def test_opencti_taxii2_connector_all_collections_in_one_run(world):
    """``*.*``: every collection of every API root in one run, one collection's ``next`` sent to the next collection."""
    seed_regional(world)
    everyone = {"krcert", "cisa", "singcert", "mmcert", "ncsc-kr"}
    world.publish("community", 23, everyone)
    world.publish("rok-us", 14, ROK_US_MEMBERS)
    asean = sharing.group_marking_id("asean")
    world.publish("regional", 9, {"singcert", "krcert"}, markings=[asean], slug="singcert")
    with Collection(world.url("reference"), user="cisa", password=world.keys["cisa"]) as coll:
        reference_ids = {i for i, _ in pairs(as_pages(coll.get_objects, per_request=PAGE_CAP))}
    with Server(f"{world.base}/taxii2/", user="cisa", password=world.keys["cisa"]) as server:
        connector = OpenCtiTaxii2Sequence(server, limit=10)
        imported: set[tuple[str, str]] = set()
        for run in range(3):
            if run:
                world.publish("community", 11, everyone)
                world.publish("rok-us", 3, ROK_US_MEMBERS)
                world.publish("regional", 4, {"singcert", "krcert"}, markings=[asean], slug="singcert")
            got = connector.run("*.*")
            imported |= set(got)
            for alias in ("community", "regional", "rok-us"):
                assert world.latest("cisa", alias) <= imported, (run + 1, alias)
            assert_nothing_hidden(world, "cisa", got, reference_ids)
            assert reference_ids <= {i for i, _ in got}  # the connector pulls everything again without added_after
        collections = sum(1 for r in server.api_roots for _ in r.collections)
        # Every poll but the very first carried the previous collection's next, and each one paged.
        assert connector.ignored == {"collection": 3 * collections - 1}
