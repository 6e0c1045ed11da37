"""`cti-hub demo` (what `make run` starts with): partner keys and an administrator login that work at once."""

from __future__ import annotations

import re

from click.testing import CliRunner
from sqlalchemy import select

from hub import models as m
from hub.cli import main
from tests import factories as f
from tests.panel import login

SHARING = "config/sharing.yaml"


def run_demo(settings: dict, tmp_path) -> str:
    result = CliRunner().invoke(
        main, ["demo", "--file", SHARING, "--objects", "20"], env=f.cli_env(settings["database_url"], tmp_path)
    )
    assert result.exit_code == 0, result.output
    return result.output


def admin_login(output: str) -> tuple[str, str, str]:
    found = re.search(r"Admin panel: (\S+)\s+user: (\S+)\s+password: (\S+)", output)
    assert found, output
    return found.group(1), found.group(2), found.group(3)


def test_the_demo_prints_an_administrator_login_that_opens_the_panel(make_app, settings, tmp_path):
    url, username, password = admin_login(run_demo(settings, tmp_path))
    assert url == "http://127.0.0.1:8000/admin/" and len(password) >= 20
    client = make_app().test_client()
    assert login(client, username, password).status_code == 302
    assert client.get("/admin/partners/").status_code == 200


def test_each_demo_run_gives_a_new_password_and_the_old_one_stops_working(make_app, settings, tmp_path):
    _, username, first = admin_login(run_demo(settings, tmp_path))
    _, same, second = admin_login(run_demo(settings, tmp_path))
    assert same == username and second != first
    app = make_app()
    assert login(app.test_client(), username, first).status_code != 302
    assert login(app.test_client(), username, second).status_code == 302
    with app.extensions["cti_hub"].session(write=False) as s:
        actions = list(s.scalars(select(m.AuditEvent.action).where(m.AuditEvent.target == username)))
    assert actions.count("admin.create") == 1 and actions.count("admin.password_reset") == 1
