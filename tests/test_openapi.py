"""The OpenAPI description: complete for every route outside the panel, served, and honoured by the live server.

The generated requests of ``tests/test_openapi_live.py`` check the feeds and the operational endpoints in detail;
the schemathesis run here sends generated requests to every operation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CONTENT_TYPE_LATEST

from hub import __version__, sharing, stix
from hub.formats import FORMATS
from tests import factories as f
from tests.live import free_port
from tests.openapi_checks import CHECKS, DOC, SCHEMA

ROOT = Path(__file__).resolve().parents[1]
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The panel is a browser application (session cookie, CSRF tokens, redirects to its login page): its HTML
# pages and files are not described, its one download that is not a page is. Flask's static files are files.
# Everything else the app routes is API and described.
PANEL_DOWNLOADS = {"admin.audit_csv"}
SINCE_PATTERN = DOC["components"]["parameters"]["FeedSince"]["schema"]["pattern"]


def _operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_the_document_is_served_without_credentials(app):
    r = app.test_client().get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.get_json()
    assert doc["openapi"] == "3.1.0" and doc == DOC
    assert doc["info"]["version"] == __version__
    assert set(doc["components"]["securitySchemes"]) == {"basic", "bearer", "metricsToken", "panelSession"}


def test_every_route_and_method_the_app_serves_is_described(app):
    """Each documented operation reaches a route, and every route but the panel's pages and static files is described.

    A route added later without its description fails here.
    """
    adapter = app.url_map.bind("hub.example")
    described = set()
    for path, method, _ in _operations(DOC):
        endpoint, _ = adapter.match(re.sub(r"\{[a-z_]+\}", "x", path), method=method.upper())
        described.add((endpoint, method))
    served = {
        (rule.endpoint, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and (not rule.endpoint.startswith("admin.") or rule.endpoint in PANEL_DOWNLOADS)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == described
    # Documented paths are the routes themselves, except the feed route, described once per format.
    routes = {_openapi_path(rule.rule) for rule in app.url_map.iter_rules()}
    feed_route = "/feeds/{api_root}/{collection_id}/{fmt}"
    assert feed_route in routes
    for path, _, _ in _operations(DOC):
        assert path in routes or path.rsplit("/", 1)[0] + "/{fmt}" == feed_route, path


def test_every_feed_format_is_described_with_its_media_type():
    feeds = {path.rsplit("/", 1)[1]: item["get"] for path, item in DOC["paths"].items() if path.startswith("/feeds/")}
    assert set(feeds) == set(FORMATS)
    for fmt, op in feeds.items():
        media = list(op["responses"]["200"]["content"])
        assert media == [FORMATS[fmt].split(";")[0] if fmt != "stix" else FORMATS[fmt]], fmt
        assert {"200", "400", "401", "404", "429", "503"} == set(op["responses"]), fmt
        assert "security" not in op  # the document's default: Basic or Bearer with an API key
        names = [p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]]
        assert names == ["FeedSince", "FeedInclude"], fmt


def test_every_taxii_operation_documents_auth_errors_and_taxii_media():
    taxii = [(path, method, op) for path, method, op in _operations(DOC) if op["tags"] == ["TAXII 2.1"]]
    assert len(taxii) == 11
    for path, method, op in taxii:
        assert {"400", "401", "403", "404", "406", "429", "503"} <= set(op["responses"]), (path, method)
        for status, response in op["responses"].items():
            if "$ref" in response or status == "200" and method == "delete":
                continue
            assert list(response["content"]) == ["application/taxii+json;version=2.1"], (path, method, status)
        names = {p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]}
        assert {"ApiRoot"} <= names or path == "/taxii2/"
    assert DOC["security"] == [{"basic": []}, {"bearer": []}]


def test_the_operational_endpoints_need_no_api_key():
    ops = {path: op for path, method, op in _operations(DOC) if op["tags"] == ["Operations"]}
    assert set(ops) == {"/healthz", "/readyz", "/metrics", "/openapi.json"}
    assert ops["/metrics"]["security"] == [{}, {"metricsToken": []}]
    assert all(ops[path]["security"] == [] for path in ("/healthz", "/readyz", "/openapi.json"))


def test_the_document_is_a_valid_openapi_3_1_schema():
    from openapi_spec_validator import validate

    validate(DOC)
    operations = [result.ok() for result in SCHEMA.get_all_operations()]
    assert len(operations) == len(_operations(DOC)) == 23


def test_answers_without_a_ready_database_match_the_description(make_app, empty_database, tmp_path):
    """Migrations pending, then no database at all: the probes, metrics and feeds still answer as described."""
    pending = make_app(database_url=empty_database).test_client()
    missing = make_app(database_url=f"sqlite:///{tmp_path / 'no-such-dir' / 'hub.db'}").test_client()
    expected = [
        (pending, "/readyz", "/readyz", 503, "application/json"),
        (missing, "/readyz", "/readyz", 503, "application/taxii+json"),
        (missing, "/feeds/dprk/community/csv", "/feeds/{api_root}/{collection_id}/csv", 503, "application/taxii+json"),
        (missing, "/healthz", "/healthz", 200, "application/json"),
        (missing, "/metrics", "/metrics", 200, "text/plain"),
    ]
    for client, url, path, status, media in expected:
        response = client.get(url, headers={"Authorization": "Bearer chub_unknown"})
        assert (response.status_code, response.mimetype) == (status, media), url
        params = {"api_root": "dprk", "collection_id": "community"} if path.startswith("/feeds/") else None
        SCHEMA[path]["GET"].Case(path_parameters=params).validate_response(response, checks=CHECKS[:4])
    # One charset, as Prometheus names it (Flask would add its own to a mimetype).
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST


@settings(max_examples=300, deadline=None)
@given(st.from_regex(SINCE_PATTERN, fullmatch=True))
def test_every_since_the_pattern_allows_is_taken_by_the_hub(text):
    if text:
        stix.parse_filter_timestamp(text)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    digits=st.integers(0, 9),
    offset=st.sampled_from(["Z", "z", "+09:00", "-05:30", " 01:00", "+23:59"]),
    sep=st.sampled_from("Tt"),
)
def test_every_timestamp_the_hub_takes_is_allowed_by_the_pattern(moment, digits, offset, sep):
    fraction = ("." + f"{moment.microsecond:06d}000"[:digits]) if digits else ""
    m = moment
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}{sep}{m.hour:02d}:{m.minute:02d}:{m.second:02d}{fraction}{offset}"
    stix.parse_filter_timestamp(text)
    assert re.fullmatch(SINCE_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.0000000000Z",
        "2026-01-01",
    ],
)
def test_the_pattern_refuses_what_the_hub_refuses(text):
    with pytest.raises(ValueError):
        stix.parse_filter_timestamp(text)
    assert not re.fullmatch(SINCE_PATTERN, text)


@pytest.fixture
def live(make_app, settings, tmp_path):
    """The demo sharing configuration served by `cti-hub serve`; yields (base url, krcert's key)."""
    app = make_app()
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
    key = f.key_for(hub, "krcert")
    port = free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
        "CTI_HUB_RATE_LIMIT_PER_MINUTE": "0",
    }
    # The access log goes to a file: thousands of lines would fill a pipe nobody reads and stall the server.
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, tmp_path / "server.log")
        yield base, key
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited: " + log.read_text()[-2000:])
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("server did not become ready")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live, tmp_path):
    """Generated requests (valid and invalid) to every operation: no 5xx, every response matches the document.

    The budget is time-bound (HUB_TEST_SCHEMATHESIS_SECONDS, default 20); ``make fuzz`` runs longer.
    Undocumented status codes are not checked: gunicorn answers over-long request lines itself (414).
    """
    base, key = live
    seconds = os.environ.get("HUB_TEST_SCHEMATHESIS_SECONDS", "20")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base}/openapi.json",
        "--url",
        base,
        "--auth",
        f"krcert:{key}",
        "--max-examples",
        "25",
        "--max-time",
        seconds,
        "--seed",
        "20240501",
        "--checks",
        "not_a_server_error,content_type_conformance,response_schema_conformance,response_headers_conformance",
        "--phases",
        "examples,fuzzing",
        "--workers",
        "2",
        "--request-timeout",
        "10",
        # NUL in path ids is a known PostgreSQL 500 (tests/security/test_injection.py, xfail); keep it out here.
        "--generation-allow-x00",
        "false",
        "--generation-database",
        "none",
        "--no-color",
    ]
    start = time.perf_counter()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=int(seconds) + 60,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # schemathesis leaves out the operation that serves the document it loaded (GET /openapi.json).
    assert "Tested: 22" in result.stdout and " passed" in result.stdout, result.stdout[-3000:]
    assert time.perf_counter() - start < int(seconds) + 30
