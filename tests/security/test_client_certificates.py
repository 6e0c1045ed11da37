"""API keys bound to a client certificate (mutual TLS), and key rotation.

A bound key works only over a connection that presented its certificate: verified by gunicorn
terminating TLS (``cti-hub serve --ca-certs``), or forwarded by a reverse proxy in the configured
header from a configured proxy address. Any mismatch is the same 401 as a wrong key.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from taxii2client.common import TokenAuth
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import ApiRoot

from hub import accounts, auth, create_app, ingest
from hub.cli import main
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import logins, snapshots
from tests import factories as f
from tests import tls
from tests.live import serve_command
from tests.panel import add_accounts, logged_in

GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


@pytest.fixture(autouse=True)
def own_ca_bundle(monkeypatch) -> None:
    """requests lets these variables override the CA a client is given; the clients here verify with the test CA."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pki(tmp_path) -> dict[str, tls.Issued]:
    ca = tls.make_ca(tmp_path, "Partners CA")
    rogue = tls.make_ca(tmp_path, "Rogue CA")
    return {
        "ca": ca,
        "server": tls.issue(ca, tmp_path, "hub-server", server=True),
        "krcert": tls.issue(ca, tmp_path, "krcert-siem"),
        "other": tls.issue(ca, tmp_path, "cisa-siem"),
        "expired": tls.issue(ca, tmp_path, "krcert-old", expired=True),
        "unsigned": tls.issue(rogue, tmp_path, "krcert-forged"),
    }


def small_world(hub: Hub) -> None:
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_collection(s, f.add_root(s, "dprk"), "shared", max_tlp=TLP.RED)
        snapshots.bump_rules(s)
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        shared = next(c.uuid for c in snap.collections.values() if c.alias == "shared")
        pk = snap.by_slug["cisa"]
    assert not ingest.ingest_envelope(hub, pk, shared, [f.indicator(9100, markings=[GREEN])]).failures


def bound_key(hub: Hub, certificate: tls.Issued, **kwargs) -> str:  # type: ignore[no-untyped-def]
    fingerprint = auth.ClientCertificate.from_pem(certificate.cert.read_text()).sha256
    return f.key_for(hub, "krcert", cert_sha256=fingerprint, **kwargs)


# --------------------------------------------------------------------- gunicorn terminating TLS


@pytest.fixture
def tls_hub(hub, settings, tmp_path, pki) -> Iterator[str]:
    small_world(hub)
    args = ["--certfile", str(pki["server"].cert), "--keyfile", str(pki["server"].key)]
    args += ["--ca-certs", str(pki["ca"].cert), "--cert-reqs", "1"]
    yield from serve_command(settings, tmp_path, *args, ca=str(pki["ca"].cert))


def pull(base: str, key: str, pki: dict[str, tls.Issued], client: str | None) -> int:
    """List the shared collection's objects with taxii2-client; return how many came, or raise."""
    cert = (str(pki[client].cert), str(pki[client].key)) if client else None
    root = ApiRoot(f"{base}/dprk/", auth=TokenAuth(key), verify=str(pki["ca"].cert), cert=cert)
    [collection] = root.collections
    return len(collection.get_objects().get("objects", []))


def test_a_bound_key_works_with_its_certificate_over_tls(hub, tls_hub, pki):
    assert pull(tls_hub, bound_key(hub, pki["krcert"]), pki, "krcert") == 1


def test_an_unbound_key_needs_no_certificate(hub, tls_hub, pki):
    assert pull(tls_hub, f.key_for(hub, "krcert"), pki, None) == 1


@pytest.mark.parametrize("client", [None, "other"])
def test_a_bound_key_without_its_certificate_is_a_plain_401(hub, tls_hub, pki, client):
    key = bound_key(hub, pki["krcert"])
    with pytest.raises(requests.HTTPError) as refused:
        pull(tls_hub, key, pki, client)
    wrong_key = requests.get(
        f"{tls_hub}/dprk/collections/", headers={"Authorization": "Bearer chub_wrong"}, verify=str(pki["ca"].cert)
    )
    assert refused.value.response.status_code == wrong_key.status_code == 401
    assert refused.value.response.content == wrong_key.content  # nothing says which part was wrong


@pytest.mark.parametrize("client", ["expired", "unsigned"])
def test_an_expired_or_unsigned_certificate_is_refused_at_the_handshake(hub, tls_hub, pki, client):
    key = bound_key(hub, pki["krcert"])
    with pytest.raises((requests.exceptions.SSLError, requests.ConnectionError, TAXIIServiceException)):
        pull(tls_hub, key, pki, client)


# --------------------------------------------------------------------- a reverse proxy forwarding the certificate


@pytest.fixture
def proxied(settings, pki):  # type: ignore[no-untyped-def]
    app = create_app(
        {**settings, "client_cert_header": "X-Client-Cert", "client_cert_proxies": "10.0.0.0/8", "trusted_proxies": 1}
    )
    hub = app.extensions["cti_hub"]
    small_world(hub)
    yield app, bound_key(hub, pki["krcert"])
    hub.engine.dispose()


def via_proxy(app, key: str, certificate: Path | None, peer: str) -> object:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}", "Accept": f.TAXII, "X-Forwarded-For": "198.51.100.20"}
    if certificate is not None:
        headers["X-Client-Cert"] = urllib.parse.quote(certificate.read_text())  # nginx's $ssl_client_escaped_cert
    return app.test_client().get("/dprk/collections/", headers=headers, environ_base={"REMOTE_ADDR": peer})


def test_a_trusted_proxy_forwards_the_certificate(proxied, pki):
    app, key = proxied
    assert via_proxy(app, key, pki["krcert"].cert, "10.1.2.3").status_code == 200


def test_a_forged_header_from_an_untrusted_address_is_a_plain_401(proxied, pki):
    app, key = proxied
    forged = via_proxy(app, key, pki["krcert"].cert, "192.0.2.9")
    wrong = app.test_client().get(
        "/dprk/collections/", headers={"Authorization": "Bearer chub_wrong", "Accept": f.TAXII}
    )
    assert forged.status_code == wrong.status_code == 401
    assert forged.get_data() == wrong.get_data()


def test_another_certificate_from_the_proxy_is_a_plain_401(proxied, pki):
    app, key = proxied
    assert via_proxy(app, key, pki["other"].cert, "10.1.2.3").status_code == 401
    assert via_proxy(app, key, None, "10.1.2.3").status_code == 401


def test_a_certificate_binding_needs_a_real_fingerprint(hub):
    small_world(hub)
    with hub.session() as s, pytest.raises(Exception, match="not a SHA-256 fingerprint"):
        accounts.create_key(s, hub.pepper, "krcert", cert_sha256="abc")


# --------------------------------------------------------------------- rotation


def test_rotation_issues_a_new_key_and_expires_the_old_after_the_overlap(hub, app):
    small_world(hub)
    old = f.key_for(hub, "krcert", label="Sentinel", read_only=True)
    client = app.test_client()

    def status(key: str) -> int:
        return client.get(
            "/dprk/collections/", headers={"Authorization": f"Bearer {key}", "Accept": f.TAXII}
        ).status_code

    runner = CliRunner()
    result = runner.invoke(main, ["keys", "rotate", "krcert", "--overlap", "7d"], obj=hub)
    assert result.exit_code == 0, result.output
    new = result.output.strip().splitlines()[-1]
    assert new.startswith(auth.SECRET_PREFIX) and new != old
    assert status(new) == status(old) == 200  # both work during the overlap
    listing = runner.invoke(main, ["keys", "list", "--partner", "krcert"], obj=hub).output
    assert listing.count("read-only") == 2 and listing.count("Sentinel") == 2, listing
    result = runner.invoke(main, ["keys", "rotate", "krcert", "--overlap", "0"], obj=hub)
    assert result.exit_code == 0, result.output
    newest = result.output.strip().splitlines()[-1]
    assert status(old) == status(new) == 401 and status(newest) == 200
    bad = runner.invoke(main, ["keys", "rotate", "krcert", "--overlap", "soon"], obj=hub)
    assert bad.exit_code != 0 and "'soon' is not a duration" in bad.output
    missing = runner.invoke(main, ["keys", "rotate", "nobody"], obj=hub)
    assert missing.exit_code == 1 and "has no active key" in missing.output


def test_keys_expiring_soon_show_in_the_panel_and_metrics_count_key_ages(hub, app):
    small_world(hub)
    with hub.session() as s:
        add_accounts(s)
    soon = f.key_for(hub, "krcert", expires_days=3)
    later_id, _ = _issue(hub, expires_days=30)
    soon_id = _key_id(hub, soon)
    admin = logged_in(app)
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert f'data-expiring="{soon_id}"' in dashboard and f'data-expiring="{later_id}"' not in dashboard
    assert f'data-expiring="{soon_id}"' in admin.get("/admin/partners/krcert").get_data(as_text=True)
    before = _age_count(app)
    headers = {"Authorization": f"Bearer {soon}", "Accept": f.TAXII}
    assert app.test_client().get("/dprk/collections/", headers=headers).status_code == 200
    assert _age_count(app) == before + 1


def _issue(hub: Hub, **kwargs) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with hub.session() as s:
        return accounts.create_key(s, hub.pepper, "krcert", **kwargs)


def _key_id(hub: Hub, secret: str) -> str:
    with hub.session(write=False) as s:
        return logins.find_key(s, auth.hash_secret(hub.pepper, secret)).key_id


def _age_count(app) -> float:  # type: ignore[no-untyped-def]
    text = app.test_client().get("/metrics").get_data(as_text=True)
    line = next((x for x in text.splitlines() if x.startswith('cti_hub_requests_by_key_age_total{age="<7d"}')), "")
    return float(line.split()[-1]) if line else 0.0
