"""Single sign-on to the panel through Flask's test client, against a real OpenID Connect provider.

The provider (tests/oidc_provider.py) runs on 127.0.0.1; the hub's test client follows the flow as a
browser would: the login page's button, the provider's login form, the callback. The browser itself
is in test_admin_sso_browser.py.
"""

from __future__ import annotations

import html
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import pytest

from hub import oidc
from hub.admin import sso
from hub.errors import ConfigError
from tests.live import free_port
from tests.oidc_provider import CLIENT_SECRET, OIDCProvider, hub_settings, sign_in_at_provider
from tests.panel import audit_events, csrf_of, login
from tests.worlds import panel_world


@pytest.fixture
def provider():
    p = OIDCProvider().start()
    p.add_user("aud", email="aud@cert.example", groups=["staff", "cti-auditors"])
    p.add_user("ada", email="ada@cert.example", groups=["cti-auditors", "cti-admins"])
    p.add_user("eve", email="eve@cert.example", groups=["staff"])
    p.add_user("nog", email="nog@cert.example")
    yield p
    p.stop()


@pytest.fixture
def app(make_app, provider):
    return make_app(**hub_settings(provider))


@pytest.fixture
def world(hub):
    return panel_world(hub)


def start(client, path: str = "/admin/sso/start") -> str:
    r = client.get(path)
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.headers["Location"]


def sso_login(client, user: str, *, path: str = "/admin/sso/start"):
    """The whole flow for ``user``: start, the provider's form, the callback; return the callback's response."""
    query = sign_in_at_provider(start(client, path), user)
    return client.get(f"/admin/sso/callback?{query}")


def text(r) -> str:
    return html.unescape(r.get_data(as_text=True))


def changed(value: str) -> str:
    """``value`` with its last character replaced by another one."""
    return value[:-1] + ("B" if value.endswith("A") else "A")


def detail(event) -> dict:
    return orjson.loads(event.detail)


# --------------------------------------------------------------------- accepted


def test_login_page_offers_the_provider_beside_the_local_login(app, world):
    page = text(app.test_client().get("/admin/login?next=/admin/audit"))
    assert "Sign in with Test IdP" in page and 'id="password"' in page
    assert "/admin/sso/start?next=/admin/audit" in page


def test_the_request_carries_pkce_state_nonce_and_the_registered_callback(app, world, provider):
    url = start(app.test_client())
    sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert len(sent["state"]) >= 32 and len(sent["nonce"]) >= 32 and sent["state"] != sent["nonce"]
    assert sent["redirect_uri"] == "http://hub.example/admin/sso/callback"
    assert sent["response_type"] == "code" and sent["scope"].split() == ["openid", "email", "profile"]
    assert CLIENT_SECRET not in url


def test_a_mapped_claim_gives_the_auditor_role_which_reads_but_cannot_change(app, world, hub, provider):
    client = app.test_client()
    r = sso_login(client, "aud")
    assert r.status_code == 200 and r.headers["Refresh"] == "0; url=/admin/"
    cookies = r.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("cti_hub_admin="))
    assert "SameSite=Strict" in session_cookie and "HttpOnly" in session_cookie
    assert any(c.startswith(f"{sso.FLOW_COOKIE}=;") for c in cookies)  # the flow cookie is spent
    page = text(client.get("/admin/"))
    assert "sso:aud@cert.example" in page and "role-auditor" in page and "Read-only auditor session" in page
    assert client.get("/admin/audit").status_code == 200
    token = csrf_of(client.get("/admin/partners/new"))
    r = client.post("/admin/partners/new", data={"csrf_token": token, "slug": "vncert", "name": "VNCERT"})
    assert r.status_code == 403 and "read-only" in text(r)
    [event] = audit_events(hub, "admin.sso_login")
    assert event.actor == "sso:aud@cert.example" and event.target == provider.users["aud"].sub
    assert detail(event) == {
        "issuer": provider.issuer,
        "subject": provider.users["aud"].sub,
        "email": "aud@cert.example",
        "role": "auditor",
        "claim": "groups",
        "values": ["cti-auditors"],
    }


def test_claims_mapping_to_both_roles_give_admin_who_can_change_the_hub(app, world, hub):
    client = app.test_client()
    assert sso_login(client, "ada").status_code == 200
    token = csrf_of(client.get("/admin/partners/new"))
    form = {"csrf_token": token, "slug": "vncert", "name": "VNCERT", "country": "VN", "kind": "cert"}
    r = client.post("/admin/partners/new", data={**form, "clearance": "AMBER", "active": "y"})
    assert r.status_code == 302, text(r)
    assert [e.actor for e in audit_events(hub, "partner.create")] == ["sso:ada@cert.example"]
    assert detail(audit_events(hub, "admin.sso_login")[0])["role"] == "admin"


def test_the_role_claim_may_come_from_userinfo_only(app, world, provider, hub):
    provider.userinfo_only = {"groups"}
    assert sso_login(app.test_client(), "aud").status_code == 200
    assert detail(audit_events(hub, "admin.sso_login")[0])["role"] == "auditor"


def test_the_landing_page_stays_inside_the_panel(app, world):
    r = sso_login(app.test_client(), "aud", path="/admin/sso/start?next=/admin/audit?action%3Dadmin")
    assert r.headers["Refresh"] == "0; url=/admin/audit?action=admin"
    for evil in ("//evil.example/x", "https://evil.example/", "/admin/\\evil", "/elsewhere"):
        r = sso_login(app.test_client(), "aud", path="/admin/sso/start?" + urlencode({"next": evil}))
        assert r.headers["Refresh"] == "0; url=/admin/", evil


# --------------------------------------------------------------------- sessions like local ones


def test_logout_ends_the_sso_session_and_a_copied_cookie(app, world, hub):
    client = app.test_client()
    sso_login(client, "aud")
    copied = client.get_cookie("cti_hub_admin", path="/admin").value
    token = csrf_of(client.get("/admin/"))
    assert client.post("/admin/logout", data={"token": token}).status_code == 400  # CSRF as for local sessions
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302
    replay = app.test_client()
    replay.set_cookie("cti_hub_admin", copied, path="/admin")
    assert replay.get("/admin/").status_code == 302
    assert [e.actor for e in audit_events(hub, "admin.logout")] == ["sso:aud@cert.example"]


def test_an_idle_sso_session_expires(app, world):
    client = app.test_client()
    sso_login(client, "aud")
    with client.session_transaction("/admin/") as sess:
        sess["seen"] = int(time.time()) - app.config["ADMIN_SESSION_MINUTES"] * 60 - 5
    r = client.get("/admin/")
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]


def test_a_role_map_no_longer_mapping_the_claim_ends_the_session(make_app, provider, world, hub):
    first = make_app(**hub_settings(provider))
    client = first.test_client()
    sso_login(client, "aud")
    cookie = client.get_cookie("cti_hub_admin", path="/admin").value
    for settings, status in (
        (hub_settings(provider), 200),
        (hub_settings(provider, oidc_role_map="cti-auditors=admin"), 200),
        (hub_settings(provider, oidc_role_map="cti-admins=admin"), 302),
        (hub_settings(provider, oidc_issuer="https://other.example"), 302),
        ({"oidc_issuer": ""}, 302),
    ):
        later = make_app(**settings).test_client()
        later.set_cookie("cti_hub_admin", cookie, path="/admin")
        assert later.get("/admin/").status_code == status, settings
    later = make_app(**hub_settings(provider, oidc_role_map="cti-auditors=admin")).test_client()
    later.set_cookie("cti_hub_admin", cookie, path="/admin")
    assert "role-admin" in text(later.get("/admin/"))


def test_local_accounts_still_log_in_beside_sso(app, world):
    client = app.test_client()
    assert login(client).status_code == 302
    assert "role-admin" in text(client.get("/admin/"))


# --------------------------------------------------------------------- refused


def test_a_claim_that_maps_to_no_role_is_refused_with_a_clear_message(app, world, hub, provider):
    client = app.test_client()
    r = sso_login(client, "eve")
    assert r.status_code == 403
    assert "signed you in as eve@cert.example" in text(r) and "'groups' claim (staff) maps to no role" in text(r)
    assert "Refresh" not in r.headers
    assert client.get("/admin/").status_code == 302
    r = sso_login(app.test_client(), "nog")
    assert r.status_code == 403 and "'groups' claim (absent)" in text(r)
    first, second = audit_events(hub, "admin.sso_refused")
    assert first.actor == "sso:eve@cert.example" and first.target == provider.users["eve"].sub
    assert detail(first)["values"] == ["staff"] and detail(first)["role"] is None
    assert "maps to no role" in detail(first)["reason"]
    assert second.actor == "sso:nog@cert.example"
    assert not audit_events(hub, "admin.sso_login")


def test_a_tampered_state_is_refused_and_spends_the_flow(app, world, hub):
    client = app.test_client()
    query = parse_qs(sign_in_at_provider(start(client), "aud"))
    good = query["state"][0]
    r = client.get("/admin/sso/callback?" + urlencode({"code": query["code"][0], "state": changed(good)}))
    assert r.status_code == 400 and "state mismatch" in text(r)
    assert client.get("/admin/").status_code == 302
    r = client.get("/admin/sso/callback?" + urlencode({"code": query["code"][0], "state": good}))
    assert r.status_code == 400 and "already used" in text(r)
    reasons = [detail(e)["reason"] for e in audit_events(hub, "admin.sso_refused")]
    assert "state mismatch" in reasons[0] and "already used" in reasons[1]
    assert {e.actor for e in audit_events(hub, "admin.sso_refused")} == {"sso:-"}


def test_a_callback_this_browser_did_not_start_is_refused(app, world):
    query = sign_in_at_provider(start(app.test_client()), "aud")
    r = app.test_client().get(f"/admin/sso/callback?{query}")
    assert r.status_code == 400 and "did not start in this browser" in text(r)


def test_a_forged_or_expired_flow_cookie_is_refused(app, world, monkeypatch):
    client = app.test_client()
    query = sign_in_at_provider(start(client), "aud")
    flow = client.get_cookie(sso.FLOW_COOKIE, path="/admin/sso/").value
    client.set_cookie(sso.FLOW_COOKIE, changed(flow[:-1]) + flow[-1], path="/admin/sso/")
    assert client.get(f"/admin/sso/callback?{query}").status_code == 400
    client.set_cookie(sso.FLOW_COOKIE, flow, path="/admin/sso/")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + sso.FLOW_SECONDS + 5)
    r = client.get(f"/admin/sso/callback?{query}")
    assert r.status_code == 400 and "longer than 10 minutes" in text(r)


def test_a_replayed_code_is_refused_by_the_provider(app, world):
    client = app.test_client()
    query = sign_in_at_provider(start(client), "aud")
    flow = client.get_cookie(sso.FLOW_COOKIE, path="/admin/sso/").value
    assert client.get(f"/admin/sso/callback?{query}").status_code == 200
    replay = app.test_client()
    replay.set_cookie(sso.FLOW_COOKIE, flow, path="/admin/sso/")
    r = replay.get(f"/admin/sso/callback?{query}")
    assert r.status_code == 400 and "did not accept the sign-in code (invalid_grant" in text(r)


def test_an_id_token_for_another_nonce_is_refused(app, world, hub):
    """A code obtained with another nonce (an injected code) fails the ID token check."""
    client = app.test_client()
    url = urlsplit(start(client))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    query["nonce"] = "a-nonce-of-the-attackers-choice"
    back = sign_in_at_provider(url._replace(query=urlencode(query)).geturl(), "aud")
    r = client.get(f"/admin/sso/callback?{back}")
    assert r.status_code == 400 and "ID token failed verification" in text(r) and "nonce" in text(r)
    assert client.get("/admin/").status_code == 302
    assert "nonce" in detail(audit_events(hub, "admin.sso_refused")[0])["reason"]


def test_an_id_token_signed_with_a_key_outside_the_jwks_is_refused(app, world, provider):
    provider.rogue_key = True
    r = sso_login(app.test_client(), "ada")
    assert r.status_code == 400 and "ID token failed verification" in text(r)


def test_a_refusal_by_the_provider_is_shown(app, world, hub):
    client = app.test_client()
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    r = client.get(
        "/admin/sso/callback?" + urlencode({"state": state, "error": "access_denied", "error_description": "no"})
    )
    assert r.status_code == 403 and "Test IdP did not sign you in (access_denied: no)" in text(r)
    assert audit_events(hub, "admin.sso_refused")


def test_an_unreachable_provider_gets_a_clear_message(make_app, world, hub):
    closed = f"http://127.0.0.1:{free_port()}"
    app = make_app(**hub_settings(OIDCProvider(), oidc_issuer=closed))
    r = app.test_client().get("/admin/sso/start")
    assert r.status_code == 502
    assert "could not be reached for its discovery document (connection refused or host unreachable)" in text(r)
    assert "log in with a local account" in text(r)


def test_a_provider_that_goes_away_mid_flow_is_refused_and_audited(app, world, hub, provider):
    client = app.test_client()
    query = sign_in_at_provider(start(client), "aud")
    provider.stop()
    r = client.get(f"/admin/sso/callback?{query}")
    assert r.status_code == 502 and "could not be reached" in text(r)
    assert "could not be reached" in detail(audit_events(hub, "admin.sso_refused")[0])["reason"]


def test_a_discovery_document_naming_another_issuer_is_refused(make_app, world, provider):
    app = make_app(**hub_settings(provider, oidc_issuer=provider.issuer.replace("127.0.0.1", "localhost")))
    r = app.test_client().get("/admin/sso/start")
    assert r.status_code == 502 and "names the issuer" in text(r)


def test_sso_routes_are_absent_while_sso_is_off(make_app, world):
    client = make_app().test_client()
    assert "Sign in with" not in text(client.get("/admin/login"))
    assert client.get("/admin/sso/start").status_code == 404
    assert client.get("/admin/sso/callback?code=x&state=y").status_code == 404


# --------------------------------------------------------------------- settings


def test_settings_are_checked_at_start_up(make_app, provider, tmp_path, monkeypatch):
    base = hub_settings(provider)
    bad = {
        "oidc_client_id": "",
        "public_url": "",
        "oidc_issuer": "http://idp.example",
        "oidc_role_map": "",
        "oidc_role_claim": "",
    }
    for key, value in bad.items():
        with pytest.raises(ConfigError, match=key if value == "" else "oidc_issuer"):
            oidc.load({**base, key: value})
    for role_map, message in (
        ("cti-admins", "not of the form"),
        ("cti-admins=root", "unknown role 'root'"),
        ("x=admin, x=auditor", "mapped to both"),
    ):
        with pytest.raises(ConfigError, match=message):
            oidc.load({**base, "oidc_role_map": role_map})
    with pytest.raises(ConfigError, match="a client secret is required"):
        oidc.load({**base, "oidc_client_secret": ""})
    with pytest.raises(ConfigError, match="set one of"):
        oidc.load({**base, "oidc_client_secret_file": str(tmp_path / "secret")})
    with pytest.raises(ConfigError, match="cannot read 'oidc_client_secret_file'"):
        oidc.load({**base, "oidc_client_secret": "", "oidc_client_secret_file": str(tmp_path / "absent")})
    with pytest.raises(ConfigError, match="oidc_client_id"):
        make_app(**{**base, "oidc_client_id": ""})


def test_the_client_secret_comes_from_a_file_or_the_environment(make_app, provider, tmp_path, monkeypatch):
    (tmp_path / "secret").write_text(CLIENT_SECRET + "\n")
    base = hub_settings(provider, oidc_client_secret="")
    assert oidc.load({**base, "oidc_client_secret_file": str(tmp_path / "secret")}).client_secret == CLIENT_SECRET
    monkeypatch.setenv("CTI_HUB_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    app = make_app(**{k: v for k, v in base.items() if k != "oidc_client_secret"})
    assert app.extensions["cti_hub_oidc"].client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(app.extensions["cti_hub_oidc"])
    client = app.test_client()
    panel_world(app.extensions["cti_hub"])
    assert sso_login(client, "aud").status_code == 200


def test_role_map_and_claim_parsing():
    assert oidc.parse_role_map("CN=ops=admin,admin=admin\n /team/audit = auditor ,") == {
        "CN=ops": "admin",  # split at commas and at the last '=': a value may hold '=' but no comma
        "admin": "admin",
        "/team/audit": "auditor",
    }
    claims = {"groups": "one", "realm_access": {"roles": ["a", "b", 3]}, "https://x.example/roles": ["r"]}
    assert oidc.claim_values(claims, "groups") == ["one"]
    assert oidc.claim_values(claims, "realm_access.roles") == ["a", "b", "3"]
    assert oidc.claim_values(claims, "https://x.example/roles") == ["r"]
    assert oidc.claim_values(claims, "realm_access") == [] and oidc.claim_values(claims, "nope.x") == []
