"""The OpenAPI description: complete for the TAXII routes, served, and honoured by the live server (schemathesis)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from hub import openapi, sharing
from tests import factories as f
from tests.live import free_port

ROOT = Path(__file__).resolve().parents[1]
TAXII_BLUEPRINTS = (
    "medallion.views.discovery",
    "medallion.views.collections",
    "medallion.views.objects",
    "medallion.views.manifest",
)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_the_document_is_served_without_credentials(app):
    r = app.test_client().get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.get_json()
    assert doc["openapi"] == "3.1.0" and doc == json.loads(openapi.document())
    assert set(doc["components"]["securitySchemes"]) == {"basic", "bearer"}


def test_every_taxii_route_and_method_is_described(app):
    doc = json.loads(openapi.document())
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in ("discovery", "collections", "objects", "manifest") or rule.rule.startswith(
            ("/taxii2/", "/<string:api_root>/")
        ):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                served.add((_openapi_path(rule.rule), method.lower()))
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served and served == described


def test_every_operation_documents_auth_errors_and_taxii_media(app):
    doc = json.loads(openapi.document())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert {"400", "401", "403", "404", "406", "429"} <= set(op["responses"]), (path, method)
            for status, response in op["responses"].items():
                if "$ref" in response or status == "200" and method == "delete":
                    continue
                assert list(response["content"]) == ["application/taxii+json;version=2.1"], (path, method, status)
            names = {p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]}
            assert {"ApiRoot"} <= names or path == "/taxii2/"
    assert doc["security"] == [{"basic": []}, {"bearer": []}]


def test_the_document_is_a_valid_openapi_3_1_schema():
    import schemathesis

    schema = schemathesis.openapi.from_dict(json.loads(openapi.document()))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11


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
    assert "Tested: 11" in result.stdout and " passed" in result.stdout
    assert time.perf_counter() - start < int(seconds) + 30
