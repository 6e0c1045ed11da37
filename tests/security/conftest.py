"""A sharing world with restricted objects, and partners that try to get past the rules.

The victim (krcert) publishes objects that the attacker (singcert, a valid partner with
TLP:AMBER clearance) must never see; each test plays the attacker with its own valid key.

One world serves a whole test module (building it per test would dominate the run on
PostgreSQL): tests may add objects, keys, partners and collections of their own
(``new_partner``, ``new_collection``), but never change what the world's fixtures hold.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from hub import create_app, reference
from hub import models as m
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import snapshots
from tests import factories as f
from tests.conftest import fresh_database_url

AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
ONLY_CISA = f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, 'only-cisa')}"


@dataclass
class World:
    app: object
    hub: Hub
    ids: dict[str, str]
    keys: dict[str, str]
    visible: dict
    hidden: dict
    red: dict
    settings: dict = field(default_factory=dict)
    apps: list = field(default_factory=list)

    def client(self, slug: str, **kwargs: Any) -> f.Client:
        return f.Client(self.app.test_client(), self.keys[slug], **kwargs)

    def make_app(self, **overrides: Any):  # type: ignore[no-untyped-def]
        """Another app on the same database, with setting overrides."""
        app = create_app({**self.settings, **overrides})
        self.apps.append(app)
        return app

    def new_partner(self, slug: str, clearance: TLP = TLP.RED, **kwargs: Any) -> str:
        """Add a partner of the test's own (a member of nothing) and return a key for it."""
        with self.hub.session() as s:
            f.add_partner(s, slug, "VN", clearance, **kwargs)
            snapshots.bump_rules(s)
        self.keys[slug] = f.key_for(self.hub, slug)
        return self.keys[slug]

    def suspend(self, slug: str) -> None:
        """Suspend a partner the test added, as an administrator would."""
        with self.hub.session() as s:
            s.execute(update(m.Partner).where(m.Partner.slug == slug).values(active=False))
            snapshots.bump_rules(s)

    def new_collection(self, alias: str, **kwargs: Any) -> str:
        with self.hub.session() as s:
            root = s.execute(select(m.ApiRoot).where(m.ApiRoot.slug == "dprk")).scalar_one()
            self.ids[alias] = f.add_collection(s, root, alias, **kwargs).uuid
        return self.ids[alias]

    def url(self, alias: str, suffix: str = "objects/") -> str:
        return f"/dprk/collections/{self.ids[alias]}/{suffix}"


def build_world(app) -> World:  # type: ignore[no-untyped-def]
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        krcert = f.add_partner(s, "krcert", "KR", TLP.RED)
        cisa = f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        f.add_partner(s, "thaicert", "TH", TLP.RED, active=False)
        f.add_group(s, "rokus", [krcert, cisa])
        root = f.add_root(s, "dprk", max_content_length=200_000)
        ids = {
            "shared": f.add_collection(s, root, "shared", max_tlp=TLP.RED).uuid,
            "rokus": f.add_collection(
                s, root, "rokus", max_tlp=TLP.AMBER_STRICT, readers=["group:rokus"], writers=["group:rokus"]
            ).uuid,
            "ind": f.add_collection(s, root, "ind", types=["indicator"], writers=["partner:krcert"]).uuid,
        }
        ids["reference"] = f.add_collection(
            s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True
        ).uuid
        reference.publish_reference(s)
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "singcert", "mycert")}
    world = World(app, hub, ids, keys, {}, {}, {})
    visible = f.indicator(900, markings=[GREEN])
    hidden = f.indicator(901, markings=[AMBER, ONLY_CISA])
    red = f.indicator(902, markings=[RED, ONLY_CISA])
    status = (
        world.client("krcert")
        .post(world.url("shared"), [f.sharing_marking(ONLY_CISA, partners=["cisa"]), visible, hidden, red])
        .get_json()
    )
    assert status["success_count"] == 4, status
    world.visible, world.hidden, world.red = visible, hidden, red
    return world


@pytest.fixture(scope="module")
def world(db_engine_name, db_template, tmp_path_factory) -> World:
    """The module's world. Per-key rate limits and the failed-login limit are off unless a test asks."""
    tmp = tmp_path_factory.mktemp("security")
    settings = {
        "database_url": fresh_database_url(db_engine_name, db_template, tmp / "hub.db"),
        "data_dir": str(tmp),
        "secret_key": "test-secret-key",
        "rate_limit_per_minute": 0,
        "login_failure_limit": 1_000_000,
    }
    app = create_app(settings)
    built = build_world(app)
    built.settings, built.apps = settings, [app]
    yield built
    for each in built.apps:
        each.extensions["cti_hub"].engine.dispose()


# --------------------------------------------------------------------- flat feeds

PER_REQUEST_HEADERS = {"Date", "X-Request-ID"}


def feed(
    world: World,
    slug: str,
    collection: str,
    fmt: str,
    params: dict | None = None,
    *,
    root: str = "dprk",
    headers: dict | None = None,
) -> Any:
    """GET one flat feed as a partner; ``collection`` is an alias of the world, a uuid or any string."""
    target = world.ids.get(collection, collection) if collection in ("shared", "ind", "reference") else collection
    return world.app.test_client().get(
        f"/feeds/{root}/{target}/{fmt}",
        query_string=params or {},
        headers={"Authorization": f"Bearer {world.keys[slug]}", **(headers or {})},
    )


def feed_ids(world: World, slug: str, collection: str, **params: str) -> set[str]:
    """The ids in a partner's STIX feed of a collection."""
    response = feed(world, slug, collection, "stix", params)
    assert response.status_code == 200, response.get_data()
    return {o["id"] for o in orjson.loads(response.get_data())["objects"]}


def same_but_ids(got: Any, reference: Any, hidden: str, absent: str) -> None:
    """Assert two responses are identical (status, headers, body) once the ids are swapped."""
    assert got.status_code == reference.status_code
    headers = [(k, v) for k, v in got.headers.items() if k not in PER_REQUEST_HEADERS]
    expected = [(k, v) for k, v in reference.headers.items() if k not in PER_REQUEST_HEADERS]
    assert headers == expected
    assert got.get_data().replace(hidden.encode(), b"X") == reference.get_data().replace(absent.encode(), b"X")
