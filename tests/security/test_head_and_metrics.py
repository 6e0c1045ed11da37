"""HEAD answers like GET without a body, and anonymous metrics do not say who publishes what."""

from __future__ import annotations

import re

import pytest

from tests import factories as f
from tests.security.conftest import PER_REQUEST_HEADERS

ENDPOINTS = ["objects/", "objects/{id}/", "objects/{id}/versions/", "manifest/", "", "objects/?match[type]=indicator"]


def head_and_get(world, slug: str, path: str):  # type: ignore[no-untyped-def]
    client = world.app.test_client()
    headers = {"Authorization": f"Bearer {world.keys[slug]}", "Accept": f.TAXII}
    return client.head(path, headers=headers), client.get(path, headers=headers)


def same_headers(head, get) -> None:  # type: ignore[no-untyped-def]
    def kept(response):  # type: ignore[no-untyped-def]
        return {k: v for k, v in response.headers.items() if k not in PER_REQUEST_HEADERS}

    assert kept(head) == kept(get)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_head_answers_like_get_without_a_body(world, endpoint):
    path = world.url("shared", endpoint.format(id=world.visible["id"]))
    head, get = head_and_get(world, "singcert", path)
    assert get.status_code == 200 and head.status_code == 200, head.get_data()[:300]
    assert head.get_data() == b""
    same_headers(head, get)
    assert int(head.headers["Content-Length"]) == len(get.get_data())


@pytest.mark.parametrize("endpoint", ["objects/{id}/", "objects/{id}/versions/"])
def test_head_on_a_hidden_object_is_the_404_of_an_absent_one(world, endpoint):
    hidden = world.url("shared", endpoint.format(id=world.hidden["id"]))
    absent = world.url("shared", endpoint.format(id="indicator--00000000-0000-4000-8000-000000000000"))
    (head_hidden, get_hidden), (head_absent, _) = (
        head_and_get(world, "singcert", hidden),
        head_and_get(world, "singcert", absent),
    )
    assert head_hidden.status_code == get_hidden.status_code == head_absent.status_code == 404
    assert head_hidden.get_data() == head_absent.get_data() == b""
    same_headers(head_hidden, head_absent)


def test_anonymous_metrics_add_up_partners(world):
    """Without ``metrics_token`` the per-partner series are summed: totals stay, partner names do not."""
    assert world.client("krcert").post(world.url("shared"), [f.indicator(980)]).status_code == 202
    body = world.app.test_client().get("/metrics").get_data(as_text=True)
    assert "partner=" not in body
    for partner in ("krcert", "cisa", "singcert", "mycert"):
        assert f'"{partner}"' not in body
    total = re.search(r"^cti_hub_objects_ingested_total (\S+)$", body, re.M)
    assert total is not None and float(total.group(1)) >= 5  # the world's four objects and this one
    token = world.make_app(metrics_token="scrape-token")  # noqa: S106
    named = token.test_client().get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert 'cti_hub_objects_ingested_total{partner="krcert"}' in named.get_data(as_text=True)
