"""``/metrics`` names partners: with ``metrics_token`` set, only the monitoring system's Bearer token reads it."""

from __future__ import annotations

import base64

import pytest

TOKEN = "m3tr1cs-token-for-prometheus-only"


@pytest.fixture(scope="module")
def guarded(world):  # type: ignore[no-untyped-def]
    app = world.make_app(metrics_token=TOKEN)
    # Some traffic, so that partner-labelled series exist.
    assert world.client("krcert").post(world.url("shared"), []).status_code in (202, 400, 422)
    return app


def metrics(app, headers: dict | None = None):  # type: ignore[no-untyped-def]
    return app.test_client().get("/metrics", headers=headers or {})


def test_without_a_token_setting_metrics_stay_open(world):
    assert world.hub.settings["metrics_token"] == ""
    assert metrics(world.app).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Basic " + base64.b64encode(f"prometheus:{TOKEN}".encode()).decode()},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"X-Metrics-Token": TOKEN},
    ],
    ids=["none", "empty", "wrong", "longer", "shorter", "token-scheme", "bare", "basic", "upper", "other-header"],
)
def test_anything_but_the_token_is_a_401_without_data(world, guarded, headers):
    response = metrics(guarded, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_data(as_text=True)
    assert "cti_hub" not in body and "krcert" not in body and TOKEN not in body


def test_a_partner_api_key_does_not_open_metrics(world, guarded):
    assert metrics(guarded, {"Authorization": f"Bearer {world.keys['krcert']}"}).status_code == 401


def test_the_token_opens_metrics(world, guarded):
    for header in (f"Bearer {TOKEN}", f"bearer  {TOKEN} "):
        response = metrics(guarded, {"Authorization": header})
        assert response.status_code == 200
        assert "cti_hub_http_requests_total" in response.get_data(as_text=True)
