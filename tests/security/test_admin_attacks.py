"""The admin panel under attack: an auditor who wants to change things, a partner with an API key, a
cross-site attacker, a stolen cookie, a password guesser, and partners whose data carries markup.

The world is the panel tests' (``tests.worlds.panel_world``) and the logged-in clients theirs; every POST route is taken
from the app's URL map, so a route added later is covered without editing this file.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import func, select

from hub import ingest
from hub import models as m
from tests import factories as f
from tests.panel import PASSWORD, any_key_id, audit_events, csrf_of, get_views, login, state
from tests.worlds import panel_world


@pytest.fixture
def world(hub):
    """The panel tests' world (not this package's module-wide one): the panel's accounts and partners."""
    return panel_world(hub)


COOKIE = "cti_hub_admin"
# Every field any panel form has, with values a form would accept: were a guard missing, the POST would work.
ANY_FORM = {
    "slug": "intruder",
    "name": "Intruder",
    "country": "KP",
    "sector": "x",
    "kind": "cert",
    "clearance": "RED",
    "active": "y",
    "confirm": "y",
    "label": "stolen",
    "read_only": "",
    "cidrs": "",
    "members": "krcert",
    "countries": "KP",
    "root": "dprk",
    "alias": "intruder",
    "title": "Intruder",
    "description": "",
    "max_tlp": "RED",
    "default_tlp": "RED",
    "types": "",
    "readers": "*",
    "writers": "*",
}
NOT_GUARDED = {"admin.login", "admin.static"}


def post_targets(app, world, hub) -> list[str]:
    """A concrete URL for every panel route that accepts POST (login excepted)."""
    values = {
        "slug": "krcert",
        "uuid": world["ids"]["regional"],
        "key_id": any_key_id(hub, "krcert"),
        "_rest": "no/such/page",
        "stix_id": world["red"],
    }
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or "POST" not in (rule.methods or ()) or rule.endpoint in NOT_GUARDED:
            continue
        missing = set(rule.arguments) - set(values)
        assert not missing, f"give {rule.rule} a value for {missing} in post_targets"
        out.append(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda g: values[g.group(1)], rule.rule))
    assert len(out) >= 10, out
    return out


def everything(hub) -> tuple:
    with hub.session(write=False) as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(t)) for t in (m.AdminUser, m.ObjectVersion, m.Marking, m.ApiKey)
        )
    return (*state(hub), counts)


def test_the_auditor_cannot_change_anything_on_any_post_route(app, auditor, world, hub):
    before = everything(hub)
    for path in post_targets(app, world, hub):
        if path == "/admin/logout":
            continue
        r = auditor.post(path, data={**ANY_FORM, "csrf_token": auditor.token})
        assert r.status_code == 403, (path, r.status_code)
        assert "read-only" in r.get_data(as_text=True)
        for method in ("PUT", "PATCH", "DELETE"):
            r = auditor.open(path, method=method, data={**ANY_FORM, "csrf_token": auditor.token})
            assert r.status_code in (403, 404, 405), (method, path)
    assert everything(hub) == before
    with hub.session(write=False) as s:
        assert not s.scalars(
            select(m.AuditEvent.action).where(m.AuditEvent.actor == "audrey", m.AuditEvent.action != "admin.login")
        ).all()


def test_every_post_route_refuses_a_missing_wrong_or_foreign_csrf_token(app, admin, auditor, world, hub):
    before = everything(hub)
    foreign = auditor.token  # a valid token, but of another session
    for path in post_targets(app, world, hub):
        for token in (None, "", "forged", foreign, admin.token + "x", admin.token.split(".")[0]):
            data = dict(ANY_FORM) if token is None else {**ANY_FORM, "csrf_token": token}
            r = admin.post(path, data=data)
            assert r.status_code == 400, (path, token, r.status_code)
            assert "Form expired" in r.get_data(as_text=True)
        # The token in a header from another site, or in the query string, is no better.
        assert admin.post(path, data=ANY_FORM, headers={"X-CSRFToken": foreign}).status_code == 400
        assert admin.post(f"{path}?csrf_token={quote(foreign)}", data=ANY_FORM).status_code == 400
    assert everything(hub) == before
    assert admin.get("/admin/").status_code == 200  # the refused logout did not log out either


# --------------------------------------------------------------------- sessions and cookies


def cookie_of(client) -> str | None:
    found = client.get_cookie(COOKIE, path="/admin")
    return found.value if found else None


def with_cookie(app, value: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    client.set_cookie(COOKIE, value, path="/admin")
    return client


def test_login_issues_a_new_session_and_old_tokens_die_with_the_old_one(app, world):
    client = app.test_client()
    page = client.get("/admin/login")
    planted, planted_token = cookie_of(client), csrf_of(page)
    assert planted  # the login form's session, which an attacker could have planted
    assert (
        client.post(
            "/admin/login", data={"csrf_token": planted_token, "username": "alice", "password": PASSWORD}
        ).status_code
        == 302
    )
    assert cookie_of(client) != planted
    assert with_cookie(app, planted).get("/admin/").status_code == 302  # the planted session is not logged in
    # The token of the pre-login page belongs to the old session: it cannot drive the new one.
    assert client.post("/admin/partners/krcert/suspend", data={"csrf_token": planted_token}).status_code == 400


def test_cookie_flags(app, world):
    r = login(app.test_client())
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert flag in cookie
    assert "Domain=" not in cookie and "Expires=" in cookie  # host-only, and it ends
    secure = app.test_client()
    token = csrf_of(secure.get("/admin/login", base_url="https://hub.example"))
    r = secure.post(
        "/admin/login",
        base_url="https://hub.example",
        headers={"Referer": "https://hub.example/admin/login"},
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert "Secure" in r.headers["Set-Cookie"]


def test_logout_invalidates_a_copied_cookie(app, world, hub):
    client = app.test_client()
    login(client)
    stolen = cookie_of(client)
    assert with_cookie(app, stolen).get("/admin/").status_code == 200
    token = csrf_of(client.get("/admin/"))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    replay = with_cookie(app, stolen)
    r = replay.get("/admin/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")
    assert replay.post("/admin/partners/krcert/suspend", data={"csrf_token": token}).status_code in (302, 400)
    with hub.session(write=False) as s:
        assert s.scalar(select(m.Partner.active).where(m.Partner.slug == "krcert"))
    # A fresh login works again.
    assert login(app.test_client()).status_code == 302


def test_a_tampered_cookie_is_not_a_session(app, world):
    client = app.test_client()
    login(client)
    value = cookie_of(client)
    payload, rest = value.split(".", 1) if not value.startswith(".") else ("." + value[1:].split(".", 1)[0], "")
    for forged in (
        value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        payload,
        "x" + value,
        base64.urlsafe_b64encode(b'{"user":{"id":1,"name":"alice","role":"admin"}}').decode(),
    ):
        assert with_cookie(app, forged).get("/admin/").status_code == 302, forged


# --------------------------------------------------------------------- redirects after login


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "///evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/admin/",
        "http:/evil.example",
        "javascript:alert(1)",
        "/admin/\r\nSet-Cookie: x=y",
        "/admin/%0d%0aLocation:%20//evil",
        " //evil.example",
        "\t//evil.example",
        "/%2F%2Fevil.example",
        "/admin/..//..//evil.example",
        "//admin/",
        "data:text/html,<script>alert(1)</script>",
        "/admin@evil.example",
        "https:evil.example",
    ],
)
def test_next_never_leaves_the_panel(app, world, target):
    client = app.test_client()
    token = csrf_of(client.get("/admin/login"))
    r = client.post(
        "/admin/login",
        query_string={"next": target},
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert r.status_code == 302, r.status_code
    location = r.headers["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/admin/") and not location.startswith("//")
    assert (
        "\r" not in location
        and "\n" not in location
        and "Set-Cookie" not in str(r.headers).replace("Set-Cookie: " + COOKIE, "")
    )


# --------------------------------------------------------------------- stored XSS

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'><svg onload=alert(3)>{{7*7}}"
MARKUP = ("<script>alert", "<img src=x", "<svg onload", "onerror=alert(2)>")


@pytest.fixture
def hostile_world(admin, world, hub, app):
    """Partner, group, collection, key, object, marking and audit data full of markup, entered by each path."""
    r = admin.post(
        "/admin/partners/new",
        data={
            "csrf_token": admin.token,
            "slug": "xsscert",
            "name": XSS,
            "country": "KP",
            "sector": XSS[:60],
            "kind": "cert",
            "clearance": "AMBER",
            "active": "y",
        },
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    r = admin.post("/admin/partners/xsscert/keys", data={"csrf_token": admin.token, "label": XSS})
    assert r.status_code == 200
    r = admin.post(
        "/admin/groups/new",
        data={"csrf_token": admin.token, "slug": "xssgroup", "name": XSS, "members": "xsscert", "countries": ""},
    )
    assert r.status_code == 302
    r = admin.post(
        "/admin/collections/new",
        data={
            "csrf_token": admin.token,
            "root": "dprk",
            "alias": "xsscoll",
            "title": XSS,
            "description": XSS,
            "max_tlp": "AMBER",
            "default_tlp": "AMBER",
            "readers": "*",
            "writers": "*",
            "types": "",
        },
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    marking = f.sharing_marking("marking-definition--6b1c1c1e-1f0a-4c4e-8f5e-0b8c7e4a1d01", partners=["cisa"])
    marking["name"] = XSS
    obj = f.indicator(
        31337,
        name=XSS,
        description=XSS,
        labels=[XSS[:40]],
        markings=[marking["id"]],
        external_references=[{"source_name": XSS, "url": "javascript:alert(4)"}],
        pattern="[domain-name:value = '<script>alert(5)</script>']",
    )
    with hub.session(write=False) as s:
        kr = hub.snapshot(s).by_slug["krcert"]
    result = ingest.ingest_envelope(hub, kr, world["ids"]["shared"], [marking, obj])
    assert not result.failures, result.failures
    # Audit rows whose actor and target come from outside: a TAXII login and a panel login with markup names.
    app.test_client().get(
        "/taxii2/", headers={"Authorization": "Basic " + base64.b64encode(f"{XSS}:chub_wrong".encode()).decode()}
    )
    other = app.test_client()
    other.post(
        "/admin/login", data={"csrf_token": csrf_of(other.get("/admin/login")), "username": XSS[:64], "password": "x"}
    )
    with hub.session(write=False) as s:
        coll = s.scalar(select(m.Collection.uuid).where(m.Collection.alias == "xsscoll"))
    return {"object": obj["id"], "collection": coll, "marking": marking["id"]}


def test_hostile_data_is_escaped_on_every_page(admin, world, hostile_world):
    found = hostile_world
    pages = [
        *get_views(world),
        "/admin/partners/xsscert",
        "/admin/partners/xsscert/edit",
        "/admin/groups/xssgroup/edit",
        f"/admin/collections/{found['collection']}/edit",
        f"/admin/objects/{found['object']}",
        f"/admin/objects/{found['marking']}",
        f"/admin/who?id={found['object']}",
        f"/admin/preview?partner=cisa&collection={world['ids']['shared']}",
        f"/admin/preview?partner=krcert&collection={found['collection']}",
        "/admin/audit?page=1",
        "/admin/objects/?text=alert",
    ]
    # Reflected input: the query string and the path are hostile too.
    reflected = [
        f"/admin/objects/?text={quote(XSS)}",
        f"/admin/objects/?id={quote(XSS)}",
        f"/admin/audit?actor={quote(XSS)}&target={quote(XSS)}&since={quote(XSS)}",
        f"/admin/who?id={quote(XSS)}",
        f"/admin/who?id=x--{quote(XSS)}",
        f"/admin/preview?partner={quote(XSS)}&collection={quote(XSS)}",
        f"/admin/objects/{quote(XSS, safe='')}",
        f"/admin/partners/{quote(XSS, safe='')}",
        f"/admin/{quote(XSS, safe='')}",
    ]
    seen_markup = 0
    for path in pages + reflected:
        r = admin.get(path)
        assert r.status_code < 500, path
        body = r.get_data(as_text=True)
        if r.mimetype != "text/html":
            continue
        for bad in MARKUP:
            assert bad not in body, (path, bad)
        assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", body, re.I), path
        seen_markup += "&lt;script&gt;alert" in body
    assert seen_markup >= 8  # the hostile values are on the pages, escaped


def test_audit_csv_neutralises_formulas(app, admin, world, hub):
    names = ['=HYPERLINK("http://evil.example")', "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1"]
    for name in names:
        other = app.test_client()
        other.post(
            "/admin/login",
            data={"csrf_token": csrf_of(other.get("/admin/login")), "username": name, "password": "wrong"},
        )
    body = admin.get("/admin/audit.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    failed = [row for row in rows if row[2] == "admin.login_failed"]
    assert len(failed) == len(names)
    for row in rows[1:]:
        assert not [cell for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")], row
    assert any(row[1] == "'" + names[0] for row in failed)


# --------------------------------------------------------------------- guessing passwords


def panel_login(
    app,
    username: str,
    password: str,
    remote: str,  # type: ignore[no-untyped-def]
    headers: dict | None = None,
):
    client = app.test_client()
    token = csrf_of(client.get("/admin/login", environ_base={"REMOTE_ADDR": remote}))
    return client.post(
        "/admin/login",
        data={"csrf_token": token, "username": username, "password": password},
        environ_base={"REMOTE_ADDR": remote},
        headers=headers or {},
    )


def test_guessing_one_account_from_many_addresses_locks_it(app, world, hub):
    for n in range(5):
        assert panel_login(app, "alice", f"guess {n}", f"198.51.100.{n}").status_code == 401
    r = panel_login(app, "alice", PASSWORD, "198.51.100.99")
    assert r.status_code == 401 and "Too many failed logins" in r.get_data(as_text=True)
    assert audit_events(hub, "admin.login_locked")
    assert panel_login(app, "audrey", PASSWORD, "198.51.100.99").status_code == 302  # other accounts are not


def test_spraying_many_accounts_from_one_address_locks_the_address(app, world):
    source = "203.0.113.50"
    for n in range(20):
        spoof = {"X-Forwarded-For": f"10.0.0.{n}", "X-Real-IP": f"10.0.0.{n}"}
        assert panel_login(app, f"user{n}", "guess", source, spoof).status_code == 401
    r = panel_login(app, "audrey", PASSWORD, source, {"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 401 and "Too many failed logins" in r.get_data(as_text=True)
    assert panel_login(app, "audrey", PASSWORD, "203.0.113.51").status_code == 302


# --------------------------------------------------------------------- API keys are not panel credentials


def test_a_partner_api_key_cannot_log_in_or_reach_the_panel(app, world, hub):
    secret = world["keys"]["krcert"]
    key_id = any_key_id(hub, "krcert")
    for user in ("krcert", key_id, "alice", ""):
        assert panel_login(app, user or "x", secret, "192.0.2.7").status_code == 401
    before = everything(hub)
    basic = "Basic " + base64.b64encode(f"krcert:{secret}".encode()).decode()
    for header in (f"Bearer {secret}", f"Token {secret}", basic):
        client = app.test_client()
        for path in ("/admin/", "/admin/partners/", "/admin/audit.csv", f"/admin/objects/{world['red']}"):
            r = client.get(path, headers={"Authorization": header})
            assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login"), path
        r = client.post("/admin/partners/new", headers={"Authorization": header}, data=ANY_FORM)
        assert r.status_code in (302, 400)
    assert everything(hub) == before


def test_no_page_shows_a_secret_to_the_auditor(app, auditor, world, hub):
    with hub.session(write=False) as s:
        hashes = [*s.scalars(select(m.ApiKey.secret_hash)), *s.scalars(select(m.AdminUser.password_hash))]
    secrets = [*world["keys"].values(), *hashes, hub.settings["secret_key"], hub.pepper, app.secret_key]
    assert len(hashes) >= 6
    for path in [*get_views(world), "/admin/partners/cisa", "/admin/audit.csv"]:
        body = auditor.get(path).get_data(as_text=True)
        assert not [x for x in secrets if x and x in body], path
