"""Recall: every partner the ledger names gets a notice and a withdrawal in its feeds; CLI and admin panel."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import ledger
from hub import models as m
from hub.cli import main
from hub.cli.ops import verify_chain
from hub.store import auditlog, recalls
from tests import factories as f
from tests.panel import csrf_of, login
from tests.worlds import small_world


@pytest.fixture
def world(hub):
    return small_world(hub, accounts=True)


@pytest.fixture
def as_(app, world):
    def client(slug: str) -> f.Client:
        return f.Client(app.test_client(), world["keys"][slug])

    return client


@pytest.fixture
def cli(settings, tmp_path: Path):
    env = {
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": "test-secret-key",
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env)

    return run


def feed(app, key: str, fmt: str = "csv", **params):
    r = app.test_client().get(
        f"/feeds/dprk/shared/{fmt}", headers={"Authorization": f"Bearer {key}"}, query_string=params
    )
    assert r.status_code == 200
    return r


def notices(hub, stix_id: str) -> dict[str, int | None]:
    with hub.session(write=False) as s:
        return {n.partner_slug: n.served_us for _, found in recalls.recalls_of(s, stix_id) for n in found}


def delivered(app, world, as_):
    """krcert publishes; cisa pulls it over TAXII and mycert through its CSV feed; nobody else receives it."""
    obj = f.indicator(1)
    assert as_("krcert").post(world["url"], [obj]).status_code == 202
    assert as_("cisa").get(world["url"] + obj["id"] + "/").status_code == 200
    rows = list(csv.DictReader(io.StringIO(feed(app, world["keys"]["mycert"]).get_data(as_text=True))))
    assert [r["id"] for r in rows] == [obj["id"]]
    return obj


def test_cli_recall_notifies_exactly_the_ledgers_recipients(app, hub, world, as_, cli):
    obj = delivered(app, world, as_)
    other = f.indicator(2)
    as_("krcert").post(world["url"], [other])
    with hub.session(write=False) as s:
        expected = {r.partner for r in ledger.who_received(s, hub.snapshot(s), obj["id"])}
    assert expected == {"cisa", "mycert"}

    out = cli("recall", obj["id"], "--reason", "misattributed to Lazarus")
    assert out.exit_code == 0, out.output
    assert "withdrawn from cisa, mycert" in out.output
    assert set(notices(hub, obj["id"])) == expected
    with hub.session(write=False) as s:
        assert verify_chain(s).problem is None
        event = auditlog.audit_events(s, action="object.recall")[-1]
        recall = s.scalars(select(m.Recall)).one()
    assert event.target == obj["id"] and event.actor == "cli"
    assert orjson.loads(event.detail)["recipients"] == ["cisa", "mycert"]
    assert recall.reason == "misattributed to Lazarus"
    assert cli("audit", "verify").exit_code == 0

    # Not served until the partner's feed lists the withdrawal; a feed without include=withdrawn does not.
    assert notices(hub, obj["id"]) == {"cisa": None, "mycert": None}
    feed(app, world["keys"]["mycert"])
    assert notices(hub, obj["id"])["mycert"] is None
    rows = list(
        csv.DictReader(io.StringIO(feed(app, world["keys"]["mycert"], include="withdrawn").get_data(as_text=True)))
    )
    assert (rows[-1]["id"], rows[-1]["status"]) == (obj["id"], "withdrawn")
    served = notices(hub, obj["id"])
    assert served["mycert"] is not None and served["cisa"] is None
    bundle = orjson.loads(feed(app, world["keys"]["cisa"], "stix", include="withdrawn").get_data())
    recalled = [o for o in bundle["objects"] if o["type"] == "x-cti-hub-withdrawal"]
    assert [(o["object_ref"], o["reason"]) for o in recalled] == [(obj["id"], "recalled")]
    assert notices(hub, obj["id"])["cisa"] is not None
    # krcert never received it: no notice, nothing in its feed about the recall.
    body = feed(app, world["keys"]["krcert"], "stix", include="withdrawn").get_data(as_text=True)
    assert "x-cti-hub-withdrawal" not in body


def test_cli_recall_of_an_unknown_object_fails_cleanly(world, cli, hub):
    out = cli("recall", f.indicator(99)["id"])
    assert out.exit_code == 1 and "the hub holds no indicator--" in out.output
    with hub.session(write=False) as s:
        assert s.scalars(select(m.Recall)).all() == []


def test_recall_nobody_received_is_recorded_without_notices(world, as_, cli, hub):
    obj = f.indicator(3)
    as_("krcert").post(world["url"], [obj])
    out = cli("recall", obj["id"])
    assert out.exit_code == 0 and "no partner has received" in out.output
    assert notices(hub, obj["id"]) == {}


def test_admin_recall_needs_csrf_confirmation_and_the_admin_role(app, hub, world, as_):
    obj = delivered(app, world, as_)
    page = f"/admin/objects/{obj['id']}"
    recall_url = page + "/recall"

    auditor = app.test_client()
    assert login(auditor, "audrey").status_code == 302
    seen = auditor.get(page)
    assert seen.status_code == 200 and "cisa" in seen.get_data(as_text=True)
    assert recall_url not in seen.get_data(as_text=True)  # no recall form for auditors
    refused = auditor.post(recall_url, data={"csrf_token": csrf_of(seen), "confirm": "y"})
    assert refused.status_code == 403

    admin = app.test_client()
    assert login(admin).status_code == 302
    shown = admin.get(page)
    assert recall_url in shown.get_data(as_text=True)
    token = csrf_of(shown)
    assert admin.post(recall_url, data={"confirm": "y", "reason": "x"}).status_code == 400  # no CSRF token
    unconfirmed = admin.post(recall_url, data={"csrf_token": token, "reason": "x"})
    assert unconfirmed.status_code == 400 and "tick the confirmation" in unconfirmed.get_data(as_text=True)
    assert notices(hub, obj["id"]) == {}

    done = admin.post(recall_url, data={"csrf_token": token, "confirm": "y", "reason": "wrong actor"})
    assert done.status_code == 302
    assert notices(hub, obj["id"]) == {"cisa": None, "mycert": None}
    with hub.session(write=False) as s:
        event = auditlog.audit_events(s, action="object.recall")[-1]
        assert event.actor == "alice" and verify_chain(s).problem is None
    feed(app, world["keys"]["mycert"], include="withdrawn")
    body = admin.get(page).get_data(as_text=True)
    assert "wrong actor" in body and body.count("not yet") == 1  # mycert served, cisa not yet
