"""Typed settings: every value range-checked with a one-line error; CTI_HUB_* names, secrets from files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub import config as hub_config
from hub.cli import main
from hub.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("HUB_", "CTI_HUB_")) and not name.startswith("HUB_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CTI_HUB_DATA_DIR", str(tmp_path))


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "CTI_HUB_MAX_PAGE_SIZE",
            "-5",
            "setting 'max_page_size' (environment CTI_HUB_MAX_PAGE_SIZE) must be a whole number from 1 to 10,000, "  # noqa: ISC003
            + "got '-5'",
        ),
        (
            "CTI_HUB_MAX_PAGE_SIZE",
            "0",
            "'max_page_size' (environment CTI_HUB_MAX_PAGE_SIZE) must be a whole number from 1 to 10,000",
        ),
        ("CTI_HUB_MAX_PAGE_SIZE", "ten", "must be a whole number from 1 to 10,000, got 'ten'"),
        (
            "CTI_HUB_NEXT_TTL_DAYS",
            "-1",
            "'next_ttl_days' (environment CTI_HUB_NEXT_TTL_DAYS) must be a whole number from 1 to 365",
        ),
        (
            "CTI_HUB_PUBLIC_URL",
            "not-a-url",
            "'public_url' (environment CTI_HUB_PUBLIC_URL) must be empty or an http(s) URL",
        ),
        (
            "CTI_HUB_DATABASE_URL",
            "mysql://x@h/db",
            "'database_url' (environment CTI_HUB_DATABASE_URL) the hub runs on SQLite or PostgreSQL",
        ),
        ("CTI_HUB_LOGIN_FAILURE_LIMIT", "0", "must be a whole number from 1 to 1,000,000"),
        ("CTI_HUB_RATE_LIMIT_PER_MINUTE", "-1", "must be a whole number of at least 0"),
        ("CTI_HUB_BOGUS", "1", "unknown setting CTI_HUB_BOGUS"),
    ],
)
def test_a_bad_value_stops_the_hub_with_one_line(monkeypatch, var, value, message) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        hub_config.load()
    assert message in caught.value.message and "\n" not in caught.value.message


def test_a_bad_page_size_refuses_to_start_the_app(monkeypatch) -> None:
    from hub import create_app

    with pytest.raises(ConfigError, match="max_page_size"):
        create_app({"max_page_size": -5})
    monkeypatch.setenv("CTI_HUB_MAX_PAGE_SIZE", "0")
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 1 and "max_page_size" in result.output and "Traceback" not in result.output


def test_service_links_and_other_tools_variables_are_ignored(monkeypatch) -> None:
    for var, value in {
        "HUB_PORT": "tcp://10.0.0.1:8000",  # Kubernetes, for a Service named "hub"
        "HUB_SERVICE_HOST": "10.0.0.1",
        "HUB_SOMETHING_ELSE": "x",  # another tool's
        "CTI_HUB_PORT": "tcp://10.0.0.2:8000",  # Kubernetes, for a Service named "cti-hub"
        "CTI_HUB_PORT_8000_TCP_ADDR": "10.0.0.2",
        "CTI_HUB_SERVICE_PORT": "8000",
    }.items():
        monkeypatch.setenv(var, value)
    settings = hub_config.load()
    assert settings["max_page_size"] == 1000 and "port" not in settings


def test_old_names_still_work_with_a_notice_and_new_names_win(monkeypatch, caplog) -> None:
    monkeypatch.setenv("HUB_MAX_PAGE_SIZE", "50")
    monkeypatch.setenv("HUB_NEXT_TTL_DAYS", "3")
    monkeypatch.setenv("CTI_HUB_NEXT_TTL_DAYS", "9")
    with caplog.at_level(logging.WARNING, logger="hub.config"):
        settings, sources = hub_config.load_with_sources()
    assert settings["max_page_size"] == 50 and settings["next_ttl_days"] == 9
    assert sources["next_ttl_days"] == "environment CTI_HUB_NEXT_TTL_DAYS"
    assert any("deprecated" in r.message and "HUB_MAX_PAGE_SIZE" in r.message for r in caplog.records)


def test_secrets_come_from_files(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("  file-secret \n")
    (tmp_path / "token").write_text("metrics-from-file\n")
    monkeypatch.setenv("CTI_HUB_SECRET_KEY_FILE", str(tmp_path / "key"))
    toml = tmp_path / "hub.toml"
    toml.write_text(f'metrics_token_file = "{tmp_path / "token"}"\n')
    settings, sources = hub_config.load_with_sources(toml)
    assert settings["secret_key"] == "file-secret" and settings["metrics_token"] == "metrics-from-file"
    assert sources["secret_key"] == "environment CTI_HUB_SECRET_KEY_FILE"
    monkeypatch.setenv("CTI_HUB_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CTI_HUB_SECRET_KEY_FILE: cannot read secret file"):
        hub_config.load()


def test_only_secrets_have_file_variants(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('max_page_size_file = "/etc/passwd"\n')
    with pytest.raises(ConfigError, match="unknown setting 'max_page_size_file'"):
        hub_config.load(toml)


def test_config_show_masks_secrets_and_names_sources(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CTI_HUB_SECRET_KEY", "very-secret-value")
    monkeypatch.setenv("CTI_HUB_DATABASE_URL", "postgresql://hub:db-password@127.0.0.1:5432/hub")
    monkeypatch.setenv("CTI_HUB_MAX_PAGE_SIZE", "250")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "very-secret-value" not in result.output and "db-password" not in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "250" in lines["max_page_size"] and "(environment CTI_HUB_MAX_PAGE_SIZE)" in lines["max_page_size"]
    assert "********" in lines["secret_key"] and "(default)" in lines["next_ttl_days"]
    assert "postgresql://hub:***@127.0.0.1:5432/hub" in lines["database_url"]
