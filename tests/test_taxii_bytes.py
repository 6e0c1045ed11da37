"""Object pages go out as the stored JSON: every object's stored text, spliced into a valid envelope.

The data is the real ATT&CK DPRK subset (many types, a quarter of it non-ASCII) with indicators of every
visibility beside it, so a page mixes objects the partner sees with objects it must not.
"""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select, update

from hub import ingest, stix
from hub import models as m
from tests import factories as f
from tests.conftest import DATA
from tests.worlds import AMBER, GREEN, RED, SHARE_CISA, small_world

AWKWARD = [
    "라자루스 C2 서버",
    'quote " backslash \\ slash /',
    "line\u2028separator",
    "</script><b>",
    "tab\tnul\u0001",
    "😀",
]


@pytest.fixture
def published(hub):
    world = small_world(hub)
    attack = orjson.loads((DATA / "dprk-attack.json").read_bytes())["objects"]
    extra = [f.indicator(1000 + i, markings=[GREEN], name=name) for i, name in enumerate(AWKWARD)]
    hidden_from_mycert = [f.indicator(2000 + i, markings=[AMBER]) for i in range(40)]
    red = [f.indicator(3000 + i, markings=[RED, SHARE_CISA]) for i in range(10)]
    everything = [*attack, f.sharing_marking(SHARE_CISA, partners=["cisa"]), *extra, *hidden_from_mycert, *red]
    with hub.session() as s:
        krcert = hub.snapshot(s).by_slug["krcert"]
    for k in range(0, len(everything), 500):
        result = ingest.ingest_envelope(hub, krcert, world["shared"], everything[k : k + 500])
        assert not result.failures, result.failures[:3]
    with hub.session() as s:
        stored = s.execute(select(m.ObjectVersion.stix_id, m.ObjectVersion.date_added, m.ObjectVersion.raw)).all()
    by_id = {r.stix_id: r for r in stored if r.stix_id in {o["id"] for o in everything}}
    assert len(by_id) == len(everything), "each object is stored as one version"
    # mycert (GREEN) sees neither the AMBER and RED indicators nor the definition of a marking that excludes it.
    hidden = {o["id"] for o in hidden_from_mycert + red} | {SHARE_CISA}
    return {**world, "stored": by_id, "hidden": hidden}


def pull(client: f.Client, url: str, **params) -> list:
    """Every page of a full pull with ``limit=1000``, following ``next``."""
    pages = [client.get(url, {"limit": 1000, **params})]
    while orjson.loads(pages[-1].data).get("more"):
        pages.append(client.get(url, {"limit": 1000, "next": orjson.loads(pages[-1].data)["next"]}))
    return pages


def check_page(response, stored: dict) -> list[dict]:
    """Check one page's envelope and that each object is, byte for byte, the stored text; return the objects."""
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f.TAXII
    assert int(response.headers["Content-Length"]) == len(response.data)
    page = orjson.loads(response.data)
    assert set(page) == ({"more", "next", "objects"} if page["more"] else {"more", "objects"})
    assert isinstance(page["more"], bool) and (not page["more"] or isinstance(page["next"], str))
    objects = page["objects"]
    for obj in objects:
        raw = stored[obj["id"]].raw
        assert orjson.loads(raw) == obj
        assert raw.encode() in response.data
    first, last = (stix.format_timestamp(stored[objects[i]["id"]].date_added) for i in (0, -1))
    assert response.headers["X-TAXII-Date-Added-First"] == first
    assert response.headers["X-TAXII-Date-Added-Last"] == last
    return objects


@pytest.mark.parametrize("slug", ["cisa", "mycert"])
def test_a_full_pull_serves_each_object_as_stored(app, published, slug):
    client = f.Client(app.test_client(), published["keys"][slug])
    pages = pull(client, published["url"])
    served = [obj for r in pages for obj in check_page(r, published["stored"])]
    ids = [o["id"] for o in served]
    assert len(ids) == len(set(ids))
    expected = {i for i in published["stored"]} - (published["hidden"] if slug == "mycert" else set())
    assert set(ids) == expected
    assert len(pages) == 3 and orjson.loads(pages[0].data)["more"] is True
    first = {o["type"] for o in orjson.loads(pages[0].data)["objects"]}
    assert {"attack-pattern", "relationship", "malware", "intrusion-set"} <= first
    assert any(not r.raw.isascii() for r in published["stored"].values() if r.stix_id in ids[:1000])
    after = pages[-1].headers["X-TAXII-Date-Added-Last"]
    empty = client.get(published["url"], {"added_after": after})
    assert empty.status_code == 200 and empty.data == b'{"more":false}'
    assert empty.headers["X-TAXII-Date-Added-First"] == empty.headers["X-TAXII-Date-Added-Last"] == after


def test_the_object_endpoint_serves_the_stored_text(app, published):
    client = f.Client(app.test_client(), published["keys"]["mycert"])
    awkward = [r for r in published["stored"].values() if '"name":"라자루스' in r.raw][0]
    url = f"{published['url']}{awkward.stix_id}/"
    r = client.get(url)
    assert r.data == b'{"more":false,"objects":[' + awkward.raw.encode() + b"]}"
    assert check_page(r, published["stored"])[0]["name"] == AWKWARD[0]
    head = client.http.head(url, headers=client.headers())
    assert head.status_code == 200 and head.data == b""
    for name in ("Content-Type", "X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
        assert head.headers[name] == r.headers[name]
    hidden = sorted(published["hidden"])[0]
    assert client.get(f"{published['url']}{hidden}/").status_code == 404


def test_stored_text_is_not_re_encoded(app, hub, published):
    """A stored version written with other spacing, key order and escapes goes out exactly so, still valid."""
    awkward = [r for r in published["stored"].values() if '"name":"라자루스' in r.raw][0]
    obj = orjson.loads(awkward.raw)
    members = [orjson.dumps(k).decode() + ": " + orjson.dumps(v).decode() for k, v in reversed(obj.items())]
    spelled = "{\n  " + ",\n  ".join(members)
    spelled = spelled.replace("라자루스", "\\ub77c\\uc790\\ub8e8\\uc2a4") + "\n}"
    assert orjson.loads(spelled) == obj
    with hub.session() as s:
        s.execute(update(m.ObjectVersion).where(m.ObjectVersion.stix_id == awkward.stix_id).values(raw=spelled))
    client = f.Client(app.test_client(), published["keys"]["mycert"])
    single = client.get(f"{published['url']}{awkward.stix_id}/")
    assert single.data == b'{"more":false,"objects":[' + spelled.encode() + b"]}"
    pages = pull(client, published["url"])
    holding = [r for r in pages if spelled.encode() in r.data]
    assert len(holding) == 1
    assert obj in orjson.loads(holding[0].data)["objects"]


def test_other_json_stays_text(app):
    """Templates and jsonify get a str from the provider; only a stored page comes out as bytes."""
    with app.app_context():
        assert app.json.dumps({"a": [1, "라"]}) == '{"a":[1,"라"]}'
