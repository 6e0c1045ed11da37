"""Generated requests to the feeds, probes, /metrics and audit download of a live hub, judged by the OpenAPI document.

One `cti-hub serve` holds the demo sharing configuration, real DPRK indicators (Elastic Security Labs' KandyKorn
and RustBucket releases, published again by krcert, some of them revoked, expired or deleted) and a metrics
token. Each operation gets schemathesis cases (hypothesis strategies from the document): valid query
parameters and invalid ones, for collections the caller reads and does not read and for random path segments,
sent with krcert's key, with mmcert's key (a narrower view), with a wrong key and with none. Every response must
have a documented status, content type, headers and body; valid input must be accepted and invalid input
refused; a 2xx with credentials must turn into a 401 without them; and every line or row of a line-based feed
must match the item schema the document gives it (``x-item-schema``). The panel's audit CSV is asked for with an
auditor's session, an API key and nothing.

HUB_TEST_SCHEMATHESIS_EXAMPLES sets the examples per operation (default 20); ``make fuzz`` raises it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.generation.case import Case

from hub import create_app, ingest, sharing
from hub.formats import observable
from tests import factories as f
from tests import panel
from tests.conftest import DATA, fresh_database_url
from tests.live import serve_command
from tests.openapi_checks import CHECKS, DOC, SCHEMA, items, items_conform

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("HUB_TEST_SCHEMATHESIS_EXAMPLES", "20"))
METRICS_TOKEN = "metrics-token-for-the-scraper"
TAXII = "application/taxii+json;version=2.1"
FEED_PATHS = [path for path in DOC["paths"] if path.startswith("/feeds/")]
pytestmark = pytest.mark.slow


def _republished(path: Path) -> list[dict]:
    """A vendor bundle's indicators as krcert publishes them: no foreign created_by_ref, still valid.

    Of each observable kind with more than one indicator the first is revoked, and the second expired when a
    third remains, so every blocklist and every removal list has lines.
    """
    indicators = [o for o in orjson.loads(path.read_bytes())["objects"] if o["type"] == "indicator"]
    # The vendors' file indicators are compound patterns (SHA-256 OR SHA-1 OR MD5), which no blocklist lists:
    # three single-hash indicators of ESET's Lazarus samples stand beside them.
    hashes = (DATA / "iocs" / "eset-nukesped-lazarus-samples.sha256.txt").read_text().split()
    indicators += [f.indicator(n, pattern=f"[file:hashes.'SHA-256' = '{h}']") for n, h in enumerate(hashes[:3])]
    kinds = [(observable(o) or ("compound",))[0] for o in indicators]
    out = []
    for n, obj in enumerate(indicators):
        obj = {k: v for k, v in obj.items() if k not in ("created_by_ref", "valid_until")}
        before, total = kinds[:n].count(kinds[n]), kinds.count(kinds[n])
        if before == 0 and total > 1:
            obj["revoked"] = True
        elif before == 1 and total > 2:
            obj["valid_until"] = "2024-06-28T14:11:56.871Z"
        out.append(obj)
    return out


@pytest.fixture(scope="module")
def served(db_engine_name, db_template, tmp_path_factory) -> Iterator[dict]:
    """The live hub; yields its base url, keys, the demo collections' ids and one deleted indicator's id."""
    tmp = tmp_path_factory.mktemp("openapi-live")
    url = fresh_database_url(db_engine_name, db_template, tmp / "hub.db")
    settings_ = {"database_url": url, "data_dir": str(tmp), "secret_key": "test-secret-key"}
    app = create_app(settings_)
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "mmcert")}
    with hub.session() as s:
        panel.add_admin(s, "audrey", "auditor")
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        ids = {c.alias: c.uuid for c in snap.collections_of("dprk")}
        krcert = snap.by_slug["krcert"]
    published = []
    for name, alias in (
        ("elastic-ref7001-kandykorn.stix21.json", "community"),
        ("elastic-rustbucket-bluenoroff.stix21.json", "regional"),
    ):
        objects = _republished(DATA / "ioc-stix" / name)
        result = ingest.ingest_envelope(hub, krcert, ids[alias], objects)
        assert not result.failures, result.failures
        published.append(objects)
    hub.engine.dispose()
    settings_.update(metrics_token=METRICS_TOKEN, rate_limit_per_minute=0, login_failure_limit=1_000_000)
    with contextlib.contextmanager(serve_command)(settings_, tmp) as base:
        deleted = next(o["id"] for o in published[0][2:] if o["pattern"].startswith("[url:"))
        r = requests.delete(
            f"{base}/dprk/collections/community/objects/{deleted}/",
            headers={"Authorization": f"Bearer {keys['krcert']}", "Accept": TAXII},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        yield {"base": base, "keys": keys, "ids": ids, "deleted": deleted, "panel": _panel_session(base)}


def _panel_session(base: str) -> str:
    """Log in to the panel as the auditor audrey; return the session cookie."""
    browser = requests.Session()
    page = browser.get(f"{base}/admin/login", timeout=10).text
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "username": "audrey", "password": panel.PASSWORD}
    assert browser.post(f"{base}/admin/login", data=form, allow_redirects=False, timeout=10).status_code == 302
    return browser.cookies["cti_hub_admin"]


def _credentials(served: dict) -> dict[str, dict[str, str]]:
    basic = base64.b64encode(f"krcert:{served['keys']['krcert']}".encode()).decode()
    return {
        "krcert": {"Authorization": f"Bearer {served['keys']['krcert']}"},
        "krcert-basic": {"Authorization": f"Basic {basic}"},
        "mmcert": {"Authorization": f"Token {served['keys']['mmcert']}"},
        "wrong key": {"Authorization": "Bearer chub_" + "x" * 43},
        "metrics token": {"Authorization": f"Bearer {METRICS_TOKEN}"},
        "auditor": {"Cookie": f"cti_hub_admin={served['panel']}"},
        "none": {},
    }


def _run(served: dict, strategy, callers: list[str], examples: int, seen: dict) -> None:
    """Send ``examples`` generated cases, each as one of ``callers``, and validate every response."""
    credentials = _credentials(served)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=strategy, caller=st.sampled_from(callers))
    def send(case: Case, caller: str) -> None:
        # The caller's credentials replace whatever the generator put in Authorization or the panel cookie.
        for name in [h for h in case.headers or {} if h.lower() in ("authorization", "cookie")]:
            del case.headers[name]
        if case.cookies:
            case.cookies.pop("cti_hub_admin", None)
        _call(served, case, credentials[caller], seen)

    send()


def _call(served: dict, case: Case, headers: dict, seen: dict) -> None:
    """Send one case with ``headers`` as its credentials; validate the response and count its status."""
    response = case.call_and_validate(
        base_url=served["base"],
        allow_redirects=False,
        headers=headers,
        checks=CHECKS,
        additional_checks=[items_conform],
        timeout=20,
    )
    seen[response.status_code] = seen.get(response.status_code, 0) + 1


def _feed_strategy(path: str, served: dict):
    operation = SCHEMA[path]["GET"]
    readable = [{"api_root": "dprk", "collection_id": c} for c in ("community", "regional", "rok-us", "reference")]
    readable.append({"api_root": "dprk", "collection_id": served["ids"]["community"]})
    known = st.sampled_from(readable)
    return st.one_of(
        known.flatmap(lambda p: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=p)),
        known.flatmap(lambda p: operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=p)),
        operation.as_strategy(GenerationMode.POSITIVE),
    )


@pytest.mark.parametrize("path", FEED_PATHS, ids=[p.rsplit("/", 1)[1] for p in FEED_PATHS])
def test_schemathesis_feed_answers_match_the_description(served, path):
    seen: dict[int, int] = {}
    _run(
        served,
        _feed_strategy(path, served),
        ["krcert", "krcert", "krcert-basic", "mmcert", "wrong key", "none"],
        EXAMPLES,
        seen,
    )
    # The generated cases need not include a refused parameter within their budget: these always do.
    operation = SCHEMA[path]["GET"]
    for query in ({"since": "2024-13-45T00:00:00Z"}, {"include": "everything"}):
        case = operation.Case(path_parameters={"api_root": "dprk", "collection_id": "community"}, query=query)
        _call(served, case, _credentials(served)["krcert"], seen)
    # Valid and invalid input both reached the hub: served feeds, refused parameters, refused callers, hidden ones.
    assert {200, 400, 401, 404} <= set(seen), seen


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_schemathesis_operational_answers_match_the_description(served, path):
    seen: dict[int, int] = {}
    strategy = SCHEMA[path]["GET"].as_strategy(GenerationMode.POSITIVE)
    _run(served, strategy, ["metrics token", "krcert", "wrong key", "none"], max(8, EXAMPLES // 3), seen)
    # Only /metrics asks for credentials (the metrics token, not an API key).
    assert set(seen) == ({200, 401} if path == "/metrics" else {200}), seen


def test_schemathesis_audit_download_answers_match_the_description(served):
    operation = SCHEMA["/admin/audit.csv"]["GET"]
    seen: dict[int, int] = {}
    _run(served, operation.as_strategy(GenerationMode.POSITIVE), ["auditor", "krcert", "none"], EXAMPLES, seen)
    # Invalid filters from a logged-in auditor (the panel sends anyone else to its login page first), never an
    # invalid cookie: the caller decides the session (see _run).
    negative = operation.as_strategy(GenerationMode.NEGATIVE, cookies={"cti_hub_admin": "replaced"})
    _run(served, negative, ["auditor"], EXAMPLES, seen)
    # Rows for the auditor, a refused date, and the login page for an API key or no session.
    assert set(seen) == {200, 302, 400}, seen


def test_every_feed_body_has_content_to_judge(served):
    """The bodies the property tests validate are not empty: each format lists what the hub stored."""
    headers = _credentials(served)["krcert"]
    for path in FEED_PATHS:
        counts = {"": 0, "withdrawn": 0}
        for alias in ("community", "regional"):
            url = served["base"] + path.format(api_root="dprk", collection_id=alias)
            for include in counts:
                response = requests.get(url, params={"include": include}, headers=headers, timeout=20)
                assert response.status_code == 200
                if path.endswith("/stix"):
                    objects = response.json()["objects"]
                    counts[include] += len(objects)
                    if include and alias == "community":
                        assert served["deleted"] in [o.get("object_ref") for o in objects]
                else:
                    counts[include] += len(items(response.headers["Content-Type"].split(";")[0], response.text))
        assert counts[""] and counts["withdrawn"], (path, counts)


def test_metrics_with_the_token_are_labelled_by_partner_and_refused_without(served):
    base, credentials = served["base"], _credentials(served)
    pulled = requests.get(
        f"{base}/dprk/collections/community/objects/", headers={**credentials["krcert"], "Accept": TAXII}, timeout=10
    )
    assert pulled.status_code == 200 and pulled.json()["objects"]
    case = SCHEMA["/metrics"]["GET"].Case()
    for caller, status in (("metrics token", 200), ("krcert", 401), ("wrong key", 401), ("none", 401)):
        response = requests.get(f"{base}/metrics", headers=credentials[caller], timeout=10)
        assert response.status_code == status, caller
        case.validate_response(response, checks=CHECKS[:4])
        if status == 200:
            assert re.search(r'^cti_hub_objects_delivered_total\{partner="krcert"\} [1-9]', response.text, re.M)
