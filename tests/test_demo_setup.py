"""`cti-hub demo` (what `make run` starts with): partner keys and an administrator login that work at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_the_demo_runs_from_an_installed_wheel_outside_the_sources(tmp_path):
    """The demo configuration ships inside the package: `cti-hub demo` needs no source checkout."""
    root = Path(__file__).resolve().parents[1]
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, root], check=True, timeout=300)
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "CTI_HUB_DATA_DIR": str(elsewhere / "var")}
    env.pop("CTI_HUB_DATABASE_URL", None)
    code = "import hub, sys; print(hub.__file__); from hub.cli import main; sys.argv = sys.argv[1:]; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "cti-hub", "demo", "--objects", "5"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(target)), "the installed copy ran, not the sources"
    assert "Admin panel:" in done.stdout and not (elsewhere / "config").exists()
