"""The admin panel through Flask's test client: accounts, login, CSRF tokens and what a POST could change."""

from __future__ import annotations

import re
import time

from argon2 import PasswordHasher
from sqlalchemy import func, select

from hub import mfa
from hub import models as m

PASSWORD = "correct horse battery staple"


def add_admin(session, username: str, role: str) -> None:
    """A panel account with a cheap argon2 hash: verifying the default parameters costs most of a second."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    session.add(m.AdminUser(username=username, password_hash=cheap.hash(PASSWORD), role=role, created_us=1))


def add_accounts(session) -> None:
    """The two panel accounts the tests log in with: alice (admin) and audrey (auditor)."""
    add_admin(session, "alice", "admin")
    add_admin(session, "audrey", "auditor")


def csrf_of(response) -> str:
    found = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', response.get_data(as_text=True))
    assert found, "no CSRF token on the page"
    return found.group(1)


def login(client, username: str = "alice", password: str = PASSWORD):
    token = csrf_of(client.get("/admin/login"))
    return client.post("/admin/login", data={"csrf_token": token, "username": username, "password": password})


def logged_in(app, username: str = "alice"):
    """A test client logged in as one of the panel accounts, with the CSRF token of its session."""
    client = app.test_client()
    assert login(client, username).status_code == 302
    client.token = csrf_of(client.get("/admin/partners/"))
    return client


def get_views(world) -> list[str]:
    ids = world["ids"]
    return [
        "/admin/",
        "/admin/partners/",
        "/admin/partners/new",
        "/admin/partners/krcert",
        "/admin/partners/krcert/edit",
        "/admin/partners/krcert/feedback",
        "/admin/groups/",
        "/admin/groups/new",
        "/admin/groups/asean/edit",
        "/admin/collections/",
        "/admin/collections/new",
        f"/admin/collections/{ids['regional']}/edit",
        "/admin/preview",
        f"/admin/preview?partner=mmcert&collection={ids['regional']}",
        "/admin/who",
        f"/admin/who?id={world['red']}",
        "/admin/audit",
        "/admin/audit?action=admin",
        "/admin/audit.csv",
        "/admin/objects/",
        "/admin/objects/?type=indicator&tlp=AMBER",
        f"/admin/objects/{world['red']}",
    ]


def state(hub) -> tuple:
    """Everything a POST could change, to compare before and after."""
    with hub.session(write=False) as s:
        return (
            s.scalar(select(func.count()).select_from(m.Partner)),
            tuple(
                s.execute(
                    select(m.Partner.slug, m.Partner.name, m.Partner.clearance, m.Partner.active).order_by(
                        m.Partner.slug
                    )
                ).all()
            ),
            tuple(s.execute(select(m.ApiKey.key_id, m.ApiKey.revoked_us).order_by(m.ApiKey.key_id)).all()),
            tuple(s.execute(select(m.TrustGroup.slug, m.TrustGroup.countries).order_by(m.TrustGroup.slug)).all()),
            s.scalar(select(func.count()).select_from(m.TrustGroupMember)),
            tuple(
                s.execute(
                    select(m.Collection.alias, m.Collection.max_tlp, m.Collection.readers).order_by(m.Collection.alias)
                ).all()
            ),
        )


def audit_events(hub, action: str) -> list[m.AuditEvent]:
    with hub.session(write=False) as s:
        rows = list(s.scalars(select(m.AuditEvent).where(m.AuditEvent.action == action).order_by(m.AuditEvent.id)))
        s.expunge_all()
        return rows


def any_key_id(hub, slug: str) -> str:
    with hub.session(write=False) as s:
        return s.execute(select(m.ApiKey.key_id).join(m.Partner).where(m.Partner.slug == slug)).scalars().first()


# --------------------------------------------------------------------- the second factor


def enrol_totp(hub, username: str = "alice"):
    """Give a panel account an authenticator, as `cti-hub admin totp` does; return the enrolment."""
    with hub.session() as s:
        return mfa.enrol_new(s, hub.pepper, username, actor="test", via="cli")


def code_of(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator holding ``secret`` shows now (or ``steps_ahead`` 30-second steps later)."""
    return mfa.code_at(secret, time.time() + steps_ahead * mfa.STEP_SECONDS)


def wrong_code(secret: str) -> str:
    """Six digits that no step near now accepts."""
    near = {code_of(secret, k) for k in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(0, 1_000_000, 7919)) if c not in near)


def second_step(client, code: str, path: str = "/admin/login/code"):
    """Post the code of a login's second step (or of an enrolment) with the page's own CSRF token."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code, page.headers.get("Location"))
    return client.post(path, data={"csrf_token": csrf_of(page), "code": code})
