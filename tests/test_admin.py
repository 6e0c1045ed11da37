"""The admin panel through Flask's test client: every view, both roles, CSRF, lockout and the sharing preview."""

from __future__ import annotations

import csv
import io
import re
import time

import orjson
import pytest
from sqlalchemy import func, select

from hub import accounts, ingest
from hub import models as m
from hub.admin import data_accounts as admin_data
from tests import factories as f
from tests.panel import PASSWORD, any_key_id, audit_events, csrf_of, get_views, login, state
from tests.worlds import SHARE_CISA, panel_world


@pytest.fixture
def world(hub):
    return panel_world(hub)


def post_routes(world) -> list[tuple[str, dict]]:
    ids = world["ids"]
    return [
        (
            "/admin/partners/new",
            {"slug": "vncert", "name": "VNCERT", "country": "VN", "kind": "cert", "clearance": "AMBER", "active": "y"},
        ),
        (
            "/admin/partners/krcert/edit",
            {"name": "KrCERT/CC", "country": "KR", "kind": "cert", "clearance": "GREEN", "active": "y"},
        ),
        ("/admin/partners/krcert/suspend", {}),
        ("/admin/partners/krcert/reactivate", {}),
        ("/admin/partners/krcert/keys", {"label": "x"}),
        ("/admin/keys/KEYID/revoke", {}),
        ("/admin/groups/new", {"slug": "newgroup", "name": "New", "members": "krcert", "countries": ""}),
        ("/admin/groups/asean/edit", {"name": "ASEAN", "members": "", "countries": "SG", "confirm": "y"}),
        (
            "/admin/collections/new",
            {
                "root": "dprk",
                "alias": "newcoll",
                "title": "New",
                "max_tlp": "AMBER",
                "default_tlp": "AMBER",
                "readers": "*",
                "writers": "*",
                "types": "",
            },
        ),
        (
            f"/admin/collections/{ids['regional']}/edit",
            {
                "title": "R",
                "max_tlp": "GREEN",
                "default_tlp": "GREEN",
                "readers": "*",
                "writers": "*",
                "types": "",
                "confirm": "y",
            },
        ),
    ]


# --------------------------------------------------------------------- login, session, headers


def test_every_view_needs_a_login(app, world):
    client = app.test_client()
    for path in get_views(world):
        r = client.get(path)
        assert r.status_code == 302, path
        assert r.headers["Location"].startswith("/admin/login"), path


def test_login_sets_a_strict_cookie_and_logout_ends_the_session(app, world, hub):
    client = app.test_client()
    r = login(client)
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert client.get("/admin/").status_code == 200
    token = csrf_of(client.get("/admin/"))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302
    assert [e.actor for e in audit_events(hub, "admin.login")] == ["alice"]
    assert [e.actor for e in audit_events(hub, "admin.logout")] == ["alice"]


def test_cookie_is_secure_over_https(app, world):
    client = app.test_client()
    token = csrf_of(client.get("/admin/login", base_url="https://hub.example"))
    r = client.post(
        "/admin/login",
        base_url="https://hub.example",
        headers={"Referer": "https://hub.example/admin/login"},
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"]


def test_next_parameter_only_returns_inside_the_panel(app, world):
    client = app.test_client()
    assert client.get("/admin/audit?action=key").headers["Location"] == "/admin/login?next=/admin/audit?action%3Dkey"
    token = csrf_of(client.get("/admin/login"))
    r = client.post(
        "/admin/login?next=//evil.example/x", data={"csrf_token": token, "username": "alice", "password": PASSWORD}
    )
    assert r.headers["Location"] == "/admin/"


def test_wrong_password_is_refused_then_the_account_locks(app, world, hub):
    client = app.test_client()
    r = login(client, password="wrong password!")
    assert r.status_code == 401 and "Wrong username or password" in r.get_data(as_text=True)
    r = login(client, username="nobody")
    assert r.status_code == 401 and "Wrong username or password" in r.get_data(as_text=True)
    for _ in range(admin_data.LOCKOUT_FAILURES - 1):
        login(client, password="wrong password!")
    r = login(client)  # the right password, but locked out
    assert r.status_code == 401 and "Too many failed logins" in r.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    assert len(audit_events(hub, "admin.login_failed")) == admin_data.LOCKOUT_FAILURES + 1
    assert audit_events(hub, "admin.login_locked")


def test_idle_session_expires(app, admin):
    assert admin.get("/admin/").status_code == 200
    with admin.session_transaction("/admin/") as sess:  # the cookie's path is /admin
        assert sess["user"]["name"] == "alice"
        sess["seen"] = int(time.time()) - app.config["ADMIN_SESSION_MINUTES"] * 60 - 5
    r = admin.get("/admin/partners/")
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    assert "session expired" in admin.get(r.headers["Location"]).get_data(as_text=True)
    assert admin.get("/admin/").status_code == 302


def test_security_headers_on_pages_errors_and_static(admin):
    for path in ("/admin/", "/admin/no-such-page", "/admin/partners/nobody", "/admin/static/admin.css", "/admin/login"):
        r = admin.get(path)
        r.close()
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["Referrer-Policy"] == "same-origin", path
        assert r.headers["X-Frame-Options"] == "DENY", path


def test_pages_have_no_inline_script_or_style(admin, world):
    for path in get_views(world):
        body = admin.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), path
        assert " style=" not in body and "<style" not in body, path
        assert "javascript:" not in body and " onclick=" not in body, path


def test_admin_errors_are_html_not_taxii_json(admin):
    for method, path, status in (
        ("GET", "/admin/no-such-page", 404),
        ("GET", "/admin/partners/nobody", 404),
        ("GET", "/admin/objects/indicator--00000000-0000-4000-8000-000000000000", 404),
        ("DELETE", "/admin/partners/", 405),
        ("GET", "/admin/partners/krcert/suspend", 405),
        ("PUT", "/admin/nowhere", 404),
    ):
        r = admin.open(path, method=method)
        assert r.status_code == status
        assert r.mimetype == "text/html"
        assert "<h1>" in r.get_data(as_text=True)


# --------------------------------------------------------------------- every view, both roles


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_every_view_renders_for_both_roles(request, world, role):
    client = request.getfixturevalue(role)
    for path in get_views(world):
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
    body = client.get("/admin/").get_data(as_text=True)
    assert "<strong>4</strong><span>live API keys</span>" in body and "built-in method" not in body
    assert re.search(r"<td>dprk/regional</td>.*?GREEN 1 AMBER 1 ", body, re.S)  # the TLP mix of its objects
    body = client.get("/admin/partners/").get_data(as_text=True)
    assert ("Add partner" in body) == (role == "admin")
    assert ("Read-only auditor session" in body) == (role == "auditor")


def test_auditor_cannot_change_anything(auditor, world, hub):
    before = state(hub)
    key_id = any_key_id(hub, "krcert")
    for path, form in post_routes(world):
        r = auditor.post(path.replace("KEYID", key_id), data={**form, "csrf_token": auditor.token})
        assert r.status_code == 403, path
        assert "read-only" in r.get_data(as_text=True)
    assert state(hub) == before
    # Logging out is the auditor's one POST.
    assert auditor.post("/admin/logout", data={"csrf_token": auditor.token}).status_code == 302


def test_every_post_needs_a_csrf_token(admin, world, hub):
    before = state(hub)
    key_id = any_key_id(hub, "krcert")
    for path, form in [*post_routes(world), ("/admin/logout", {})]:
        for token in (None, "forged-token"):
            data = {**form} if token is None else {**form, "csrf_token": token}
            r = admin.post(path.replace("KEYID", key_id), data=data)
            assert r.status_code == 400, path
            assert "Form expired" in r.get_data(as_text=True), path
    assert state(hub) == before
    assert admin.get("/admin/").status_code == 200  # still logged in: the logout was refused too


def test_login_form_needs_a_csrf_token(app, world):
    r = app.test_client().post("/admin/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)


# --------------------------------------------------------------------- partners and keys


def test_create_partner_is_audited_with_its_values(admin, hub):
    r = admin.post(
        "/admin/partners/new",
        data={
            "csrf_token": admin.token,
            "slug": "vncert",
            "name": "VNCERT/CC",
            "country": "vn",
            "kind": "cert",
            "clearance": "AMBER",
            "active": "y",
        },
    )
    assert r.status_code == 302 and r.headers["Location"] == "/admin/partners/vncert"
    page = admin.get("/admin/partners/vncert").get_data(as_text=True)
    assert "VNCERT/CC" in page and "TLP:AMBER" in page and "no API key yet" in page
    [event] = audit_events(hub, "partner.create")
    assert event.actor == "alice" and event.target == "vncert"
    assert orjson.loads(event.detail) == {
        "before": {},
        "after": {
            "name": "VNCERT/CC",
            "country": "VN",
            "sector": "",
            "kind": "cert",
            "clearance": "AMBER",
            "active": True,
            "acs_organization": "",
            "acs_shareability": "",
            "acs_entity": "",
        },
    }
    with hub.session(write=False) as s:  # its identity joins the reference collection
        assert s.scalar(select(func.count()).where(m.ObjectVersion.raw.contains('"x_cti_hub_partner":"vncert"')))


BAD_PARTNERS = [
    ({"slug": "Bad Slug!"}, "lower-case letters"),
    ({"slug": "krcert"}, "already exists"),
    ({"country": "VNM"}, "two-letter ISO 3166"),
    ({"name": ""}, "This field is required"),
    ({"clearance": "PURPLE"}, "Not a valid choice"),
]


def test_bad_partner_input_rerenders_and_changes_nothing(admin, hub):
    before = state(hub)
    for form, error in BAD_PARTNERS:
        data = {
            "csrf_token": admin.token,
            "slug": "vncert",
            "name": "VNCERT",
            "country": "VN",
            "kind": "cert",
            "clearance": "AMBER",
            **form,
        }
        r = admin.post("/admin/partners/new", data=data)
        assert r.status_code == 400, form
        assert error in r.get_data(as_text=True), form
        assert 'value="VNCERT"' in r.get_data(as_text=True) or not form.get("name", "x"), form  # input kept
    assert state(hub) == before


def test_edit_partner_records_before_and_after(admin, hub):
    r = admin.post(
        "/admin/partners/singcert/edit",
        data={
            "csrf_token": admin.token,
            "name": "SingCERT",
            "country": "SG",
            "kind": "cert",
            "clearance": "RED",
            "active": "y",
            "slug": "renamed",
        },
    )
    assert r.status_code == 302
    [event] = audit_events(hub, "partner.update")
    detail = orjson.loads(event.detail)
    assert detail["before"]["clearance"] == "AMBER" and detail["after"]["clearance"] == "RED"
    assert event.target == "singcert"  # the id cannot be changed through the form
    r = admin.post(
        "/admin/partners/singcert/edit",
        data={"csrf_token": admin.token, "name": "", "country": "SG", "kind": "cert", "clearance": "RED"},
    )
    assert r.status_code == 400 and "This field is required" in r.get_data(as_text=True)


def test_lowering_a_clearance_shows_what_the_partner_loses_first(admin, world, hub):
    form = {
        "csrf_token": admin.token,
        "name": "SINGCERT",
        "country": "SG",
        "kind": "cert",
        "clearance": "GREEN",
        "active": "y",
    }
    before = state(hub)
    r = admin.post("/admin/partners/singcert/edit", data=form)
    assert r.status_code == 409
    body = r.get_data(as_text=True)
    assert "Effect of this change" in body and world["amber"] in body and "dprk/regional" in body
    assert state(hub) == before
    assert admin.post("/admin/partners/singcert/edit", data={**form, "confirm": "y"}).status_code == 302
    assert orjson.loads(audit_events(hub, "partner.update")[0].detail)["after"]["clearance"] == "GREEN"


def test_suspend_takes_effect_on_the_next_request(app, admin, world, hub):
    taxii = f.Client(app.test_client(), world["keys"]["cisa"])
    url = f"/dprk/collections/{world['ids']['shared']}/objects/"
    assert taxii.get(url).status_code == 200
    page = admin.get("/admin/partners/cisa").get_data(as_text=True)
    assert "member of trust groups rokus" in page and "live API keys" in page
    assert admin.post("/admin/partners/cisa/suspend", data={"csrf_token": admin.token}).status_code == 302
    assert taxii.get(url).status_code == 401
    assert admin.post("/admin/partners/cisa/reactivate", data={"csrf_token": admin.token}).status_code == 302
    assert taxii.get(url).status_code == 200
    assert [e.target for e in audit_events(hub, "partner.suspend")] == ["cisa"]
    assert orjson.loads(audit_events(hub, "partner.reactivate")[0].detail)["after"] == {"active": True}


def test_issue_key_shows_secret_once_with_examples_then_revoke(app, admin, world, hub):
    r = admin.post(
        "/admin/partners/mmcert/keys", data={"csrf_token": admin.token, "label": "Sentinel prod", "expires_days": "90"}
    )
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    secret = re.search(r'<code id="secret" class="secret">([^<]+)</code>', body).group(1)
    regional = world["ids"]["regional"]
    assert f"http://localhost/dprk/collections/{regional}/" in body
    assert "taxii2client.v21" in body and "curl -u 'mmcert:" in body and "Microsoft Sentinel" in body
    assert "http://localhost/dprk/" in body and regional in body
    taxii = f.Client(app.test_client(), secret, scheme="basic", user="mmcert")
    assert taxii.get(f"/dprk/collections/{regional}/objects/").status_code == 200
    page = admin.get("/admin/partners/mmcert").get_data(as_text=True)
    assert "Sentinel prod" in page and secret not in page  # never shown again
    [event] = audit_events(hub, "key.create")[-1:]
    assert event.actor == "alice" and event.target == "mmcert"
    key_id = orjson.loads(event.detail)["key_id"]
    assert admin.post(f"/admin/keys/{key_id}/revoke", data={"csrf_token": admin.token}).status_code == 302
    assert taxii.get(f"/dprk/collections/{regional}/objects/").status_code == 401
    assert audit_events(hub, "key.revoke")[-1].actor == "alice"
    assert "revoked" in admin.get("/admin/partners/mmcert").get_data(as_text=True)


def test_bad_key_input_issues_nothing(admin, hub):
    before = state(hub)
    r = admin.post(
        "/admin/partners/mmcert/keys", data={"csrf_token": admin.token, "cidrs": "300.1.2.0/24"}, follow_redirects=True
    )
    assert "The key was not issued" in r.get_data(as_text=True)
    r = admin.post(
        "/admin/partners/mmcert/keys", data={"csrf_token": admin.token, "expires_days": "-3"}, follow_redirects=True
    )
    assert "The key was not issued" in r.get_data(as_text=True)
    assert admin.post("/admin/keys/nokey/revoke", data={"csrf_token": admin.token}).status_code == 404
    assert admin.post("/admin/partners/nobody/keys", data={"csrf_token": admin.token}).status_code == 404
    assert state(hub) == before


# --------------------------------------------------------------------- trust groups


def test_create_group_and_see_effective_members(admin, hub):
    r = admin.post(
        "/admin/groups/new",
        data={
            "csrf_token": admin.token,
            "slug": "five-eyes-kr",
            "name": "Mixed",
            "members": "krcert, cisa",
            "countries": "mm",
        },
    )
    assert r.status_code == 302
    body = admin.get("/admin/groups/").get_data(as_text=True)
    assert "<strong>3</strong>: cisa, krcert, mmcert" in body
    [event] = audit_events(hub, "group.create")
    assert orjson.loads(event.detail)["after"] == {"name": "Mixed", "members": ["cisa", "krcert"], "countries": ["MM"]}


BAD_GROUPS = [
    ({"members": "krcert, ghost"}, "unknown partner ghost"),
    ({"countries": "MMR"}, "not a valid two-letter country code"),
    ({"slug": "asean"}, "already exists"),
    ({"slug": "Bad slug"}, "lower-case letters"),
]


def test_bad_group_input_changes_nothing(admin, hub):
    before = state(hub)
    for form, error in BAD_GROUPS:
        r = admin.post(
            "/admin/groups/new",
            data={"csrf_token": admin.token, "slug": "g1", "name": "G", "members": "", "countries": "", **form},
        )
        assert r.status_code == 400 and error in r.get_data(as_text=True), form
    assert state(hub) == before


def test_group_change_shows_who_loses_what_and_asks_to_confirm(admin, world, hub):
    form = {"csrf_token": admin.token, "name": "ASEAN", "members": "", "countries": "SG"}
    before = state(hub)
    r = admin.post("/admin/groups/asean/edit", data=form)
    assert r.status_code == 409
    body = r.get_data(as_text=True)
    assert "Effect of this change" in body and "mmcert" in body and world["green"] in body
    assert state(hub) == before
    assert admin.post("/admin/groups/asean/edit", data={**form, "confirm": "y"}).status_code == 302
    assert state(hub) != before
    assert orjson.loads(audit_events(hub, "group.update")[0].detail)["before"]["countries"] == ["MM", "SG"]


# --------------------------------------------------------------------- collections


def test_create_collection(admin, hub):
    r = admin.post(
        "/admin/collections/new",
        data={
            "csrf_token": admin.token,
            "root": "dprk",
            "alias": "iocs",
            "title": "IOC feed",
            "description": "",
            "max_tlp": "GREEN",
            "default_tlp": "GREEN",
            "types": "indicator, malware",
            "readers": "group:asean, cisa",
            "writers": "partner:krcert",
        },
    )
    assert r.status_code == 302
    body = admin.get("/admin/collections/").get_data(as_text=True)
    assert "iocs" in body and "indicator, malware" in body and "group:asean, cisa" in body
    [event] = audit_events(hub, "collection.create")
    assert orjson.loads(event.detail)["after"]["max_tlp"] == "GREEN"


BAD_COLLECTIONS = [
    ({"default_tlp": "RED"}, "cannot be above the collection"),
    ({"readers": "group:ghosts"}, "unknown trust group"),
    ({"writers": "nobody"}, "unknown partner"),
    ({"readers": "team:x"}, "not a valid grant"),
    ({"types": "Not A Type"}, "not a valid STIX type"),
    ({"alias": "regional"}, "already has a collection"),
    ({"root": "elsewhere"}, "Not a valid choice"),
    ({"blocklist_ipv4_prefix": "4"}, "use a prefix length from 8 to 32"),
    ({"blocklist_ipv6_prefix": "8"}, "use a prefix length from 16 to 128"),
]


def test_bad_collection_input_changes_nothing(admin, hub):
    before = state(hub)
    for form, error in BAD_COLLECTIONS:
        r = admin.post(
            "/admin/collections/new",
            data={
                "csrf_token": admin.token,
                "root": "dprk",
                "alias": "iocs",
                "title": "IOC feed",
                "max_tlp": "AMBER",
                "default_tlp": "GREEN",
                "types": "",
                "readers": "*",
                "writers": "*",
                **form,
            },
        )
        assert r.status_code == 400, form
        assert error in r.get_data(as_text=True), form
    assert state(hub) == before


def test_restricting_a_collection_asks_for_confirmation(admin, world, hub):
    url = f"/admin/collections/{world['ids']['regional']}/edit"
    form = {
        "csrf_token": admin.token,
        "title": "Regional",
        "max_tlp": "GREEN",
        "default_tlp": "GREEN",
        "types": "",
        "readers": "group:asean, group:rokus",
        "writers": "group:asean, group:rokus",
    }
    before = state(hub)
    r = admin.post(url, data=form)
    assert r.status_code == 409
    body = r.get_data(as_text=True)
    assert "withdraws objects" in body and world["amber"] in body
    assert state(hub) == before
    assert admin.post(url, data={**form, "confirm": "y"}).status_code == 302
    [event] = audit_events(hub, "collection.update")
    detail = orjson.loads(event.detail)
    assert detail["before"]["max_tlp"] == "AMBER" and detail["after"]["max_tlp"] == "GREEN"


def test_reference_collection_cannot_be_edited(admin, hub):
    with hub.session(write=False) as s:
        ref = s.execute(select(m.Collection.uuid).where(m.Collection.is_reference.is_(True))).scalar_one()
    assert admin.get(f"/admin/collections/{ref}/edit").status_code == 400


# --------------------------------------------------------------------- sharing preview


def test_preview_explains_the_withheld_amber_object(admin, world):
    r = admin.get(f"/admin/preview?partner=mmcert&collection={world['ids']['regional']}")
    body = r.get_data(as_text=True)
    row = re.search(rf'<tr class="denied" data-object="{world["amber"]}">.*?</tr>', body, re.S).group(0)
    assert "TLP:AMBER above partner clearance GREEN" in row
    assert re.search(rf'<tr class="allowed" data-object="{world["green"]}">', body)
    assert "receives <strong>1</strong> of 2 objects" in body


def test_preview_matches_what_the_taxii_server_delivers(app, admin, world):
    """The preview's received set equals, for every partner and collection, what TAXII serves that partner."""
    http = app.test_client()
    for slug, key in world["keys"].items():
        for name, uuid in world["ids"].items():
            r = f.Client(http, key).get(f"/dprk/collections/{uuid}/objects/")
            served = {o["id"] for o in (orjson.loads(r.data).get("objects", []) if r.status_code == 200 else [])}
            body = admin.get(f"/admin/preview?partner={slug}&collection={uuid}").get_data(as_text=True)
            previewed = set(re.findall(r'<tr class="allowed" data-object="([^"]+)">', body))
            assert previewed == served, (slug, name)


def test_preview_bad_input_says_what_is_wrong(admin, world):
    r = admin.get(f"/admin/preview?partner=ghost&collection={world['ids']['regional']}")
    assert r.status_code == 400 and "is not one" in r.get_data(as_text=True)
    r = admin.get("/admin/preview?partner=mmcert&collection=nope")
    assert r.status_code == 400 and "No collection" in r.get_data(as_text=True)


def test_who_can_see_lists_every_partner_with_reasons(admin, world):
    body = admin.get(f"/admin/who?id={world['red']}").get_data(as_text=True)

    def row(slug: str) -> str:
        return re.search(rf'<tr class="(\w+)" data-partner="{slug}">(.*?)</tr>', body, re.S).group(0)

    assert 'class="allowed"' in row("cisa")
    assert 'class="allowed"' in row("krcert") and "originator sees its own objects" in row("krcert")
    assert 'class="denied"' in row("singcert") and "TLP:RED and singcert is not named" in row("singcert")
    assert 'class="denied"' in row("mmcert") and "above partner clearance GREEN" in row("mmcert")
    r = admin.get("/admin/who?id=not-an-id")
    assert r.status_code == 400 and "is not a STIX id" in r.get_data(as_text=True)
    assert "is stored in any collection" in admin.get(
        "/admin/who?id=indicator--00000000-0000-4000-8000-000000000000"
    ).get_data(as_text=True)


# --------------------------------------------------------------------- audit and objects


def test_audit_filters_and_csv_export(admin, hub):
    with hub.session() as s:
        from hub.store import auditlog

        auditlog.audit(s, "=cmd|' /C calc'!A0", "partner.update", "krcert", {"before": {}, "after": {}})
    body = admin.get("/admin/audit?action=admin").get_data(as_text=True)
    assert "<code>admin.login</code>" in body and "<code>partner.update</code>" not in body
    body = admin.get("/admin/audit?target=krcert&action=partner.update").get_data(as_text=True)
    assert "calc" in body
    r = admin.get("/admin/audit?since=yesterday")
    assert r.status_code == 400 and "is not a date" in r.get_data(as_text=True)
    r = admin.get("/admin/audit.csv?action=partner")
    assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == ["time_utc", "actor", "action", "target", "source", "detail"]
    assert rows[1][1].startswith("'=")  # a formula is kept as text
    assert all(row[2].startswith("partner") for row in rows[1:])


def test_objects_browser_search_and_detail(admin, world):
    body = admin.get("/admin/objects/?tlp=AMBER").get_data(as_text=True)
    assert "administrator view: all objects" in body
    assert world["amber"] in body and world["red"] not in body
    body = admin.get("/admin/objects/?partner=krcert&type=indicator&text=Lazarus C2 3").get_data(as_text=True)
    assert world["red"] in body and world["amber"] not in body
    assert admin.get("/admin/objects/?tlp=PURPLE").status_code == 400
    assert admin.get("/admin/objects/?partner=ghost").status_code == 400
    body = admin.get(f"/admin/objects/{world['red']}").get_data(as_text=True)
    assert "&#34;pattern_type&#34;: &#34;stix&#34;" in body and SHARE_CISA in body and "TLP:RED" in body
    assert "partners cisa" in body


def test_accounts_made_by_the_cli_service_log_in(app, world, hub):
    with hub.session() as s:
        accounts.create_admin(s, "carol", PASSWORD, "auditor")
    client = app.test_client()
    assert login(client, "carol").status_code == 302
    assert "carol" in client.get("/admin/").get_data(as_text=True)


def test_a_changed_role_takes_effect_on_the_next_request(admin, hub):
    with hub.session() as s:
        s.execute(m.AdminUser.__table__.update().where(m.AdminUser.username == "alice").values(role="auditor"))
    r = admin.post("/admin/partners/krcert/suspend", data={"csrf_token": admin.token})
    assert r.status_code == 403
    with hub.session() as s:
        s.execute(m.AdminUser.__table__.delete().where(m.AdminUser.username == "alice"))
    assert admin.get("/admin/").status_code == 302


def test_the_panel_sets_blocklist_limits_and_shows_why_an_indicator_is_not_listed(admin, world, hub):
    form = {
        "csrf_token": admin.token,
        "root": "dprk",
        "alias": "nets",
        "title": "Networks",
        "max_tlp": "GREEN",
        "default_tlp": "GREEN",
        "readers": "*",
        "writers": "*",
        "blocklist_ipv4_prefix": "28",
        "blocklist_allow_warninglisted": "y",  # these documentation-range values are warninglisted
    }
    assert admin.post("/admin/collections/new", data=form).status_code == 302
    listing = admin.get("/admin/collections/").get_data(as_text=True)
    assert "up to /28, /48" in listing and "warninglisted values listed" in listing
    with hub.session(write=False) as s:
        row = s.execute(select(m.Collection).where(m.Collection.alias == "nets")).scalar_one()
        limits = (row.blocklist_ipv4_prefix, row.blocklist_ipv6_prefix, row.blocklist_allow_warninglisted)
        uuid = row.uuid
        kr = s.execute(select(m.Partner.id).where(m.Partner.slug == "krcert")).scalar_one()
    assert limits == (28, 48, True)
    wide = f.indicator(7001, pattern="[ipv4-addr:value = '198.51.100.0/24']")
    narrow = f.indicator(7002, pattern="[ipv4-addr:value = '198.51.100.0/29']")
    assert not ingest.ingest_envelope(hub, kr, uuid, [wide, narrow]).failures
    body = admin.get(f"/admin/objects/{wide['id']}").get_data(as_text=True)
    assert "not in the blocklists" in body and "/24" in body and "/28" in body
    body = admin.get(f"/admin/objects/{narrow['id']}").get_data(as_text=True)
    assert "listed in its blocklist" in body and "not in the blocklists" not in body
