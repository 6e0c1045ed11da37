"""Every CLI failure is one line on standard error and exit status 1; read-only commands change nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from hub import db
from hub.cli import main
from tests import factories as f


def run(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(main, args, env=env)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def assert_one_line(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("mysql://hub@127.0.0.1/hub", ("database_url", "SQLite or PostgreSQL", "'mysql'")),
        ("plainstring", ("database_url", "'plainstring' is not a database URL", "postgresql://")),
        ("sqlite+unknown:///x.db", ("database_url",)),
    ],
    ids=["mysql", "plain-string", "unknown-driver"],
)
def test_a_bad_database_url_is_one_line(tmp_path: Path, url: str, needles: tuple[str, ...]) -> None:
    assert_one_line(run(["partners", "list"], f.cli_env(url, tmp_path)), *needles)


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/hub"
    assert_one_line(run(["db", "upgrade"], f.cli_env(url, tmp_path)), "database failed", "database_url")


def test_debug_shows_the_traceback_instead(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/hub"
    result = run(["--debug", "db", "upgrade"], f.cli_env(url, tmp_path))
    assert result.exit_code == 1 and result.exception is not None and not isinstance(result.exception, SystemExit)


def test_postgres_scheme_means_postgresql() -> None:
    assert db.engine_url("postgres://u@127.0.0.1:5432/hub") == "postgresql+psycopg://u@127.0.0.1:5432/hub"
    assert db.engine_url("postgresql://u:pw@h/hub") == "postgresql+psycopg://u:pw@h/hub"
    assert db.engine_url("sqlite:///var/hub.db") == "sqlite:///var/hub.db"


def test_an_unusable_data_directory_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    # No database_url: the default SQLite file lives under the data directory, which cannot be made.
    env = {
        "CTI_HUB_SECRET_KEY": "test-secret-key",
        "CTI_HUB_DATA_DIR": str(blocker / "data"),
        "CTI_HUB_DATABASE_URL": "",
    }
    result = run(["db", "upgrade"], env)
    assert_one_line(result, str(blocker))


def test_usage_errors_exit_1_and_h_is_help(tmp_path: Path) -> None:
    env = f.cli_env(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    bogus = run(["partners", "bogus"], env)
    assert bogus.exit_code == 1 and "No such command 'bogus'" in bogus.output
    missing = run(["keys", "create"], env)
    assert missing.exit_code == 1 and "Missing argument" in missing.output
    for args in (["-h"], ["partners", "-h"], ["keys", "create", "-h"], ["serve", "-h"]):
        shown = run(args, env)
        assert shown.exit_code == 0 and "Usage: " in shown.output, args


def test_python_m_hub_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "hub", "-h"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Run and administer a cti-hub" in done.stdout


def test_read_only_commands_do_not_migrate(empty_database: str, tmp_path: Path) -> None:
    env = f.cli_env(empty_database, tmp_path)
    for args in (["partners", "list"], ["keys", "list"], ["audit", "verify"], ["audit", "list"]):
        assert_one_line(run(args, env), "cti-hub db upgrade")
    engine = create_engine(db.engine_url(empty_database))
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert run(["db", "upgrade"], env).exit_code == 0
    listed = run(["partners", "list"], env)
    assert listed.exit_code == 0 and listed.output.startswith("PARTNER")
