"""Settings: defaults, then a TOML file, then ``HUB_*`` environment variables, then a test mapping.

Each layer may only name keys that exist in ``DEFAULTS``; anything else is an
error naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "data_dir": "./var",
    "database_url": "",
    "public_url": "",
    "secret_key": "",
    "max_page_size": 1000,
    "next_ttl_days": 7,
    "status_retention_days": 7,
    "trusted_proxies": 0,
    "client_cert_header": "",
    "client_cert_proxies": "",
    "login_failure_limit": 20,
    "login_failure_window_seconds": 300,
    # Panel accounts must sign in with a second factor (TOTP); an account without one enrols at its next login.
    "admin_mfa_required": True,
    "rate_limit_per_minute": 600,
    "discovery_title": "cti-hub",
    "discovery_description": "Regional threat-intelligence sharing hub (TAXII 2.1)",
    "metrics_token": "",
    "feeds_sync_interval_seconds": 0,
    # Per-partner quotas on what makes every partner's reads and every snapshot rebuild more work. A CERT
    # uses a handful of sharing markings (one per audience it shares with) and a few dozen combinations of
    # them; 500 markings and 2,000 combinations leave ten times the largest real use (the demo world
    # uses 12 and 30) while bounding the hub-wide total for a few dozen partners. 0 turns a quota off.
    "max_sharing_markings_per_partner": 500,
    "max_restriction_sets_per_partner": 2000,
}


def _coerce(key: str, value: Any) -> Any:
    default = DEFAULTS[key]
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {key!r} must be an integer, got {value!r}") from None
    return str(value)


def load(file: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the effective settings."""
    settings = dict(DEFAULTS)
    path = file or os.environ.get("HUB_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from None
        settings.update(_layer(data, f"settings file {path}"))
    # HUB_CONFIG names the file itself; HUB_TEST_* belong to the test suite, not to the hub.
    env = {
        k.removeprefix("HUB_").lower(): v
        for k, v in os.environ.items()
        if k.startswith("HUB_") and k != "HUB_CONFIG" and not k.startswith("HUB_TEST_")
    }
    settings.update(_layer(env, "environment (HUB_*)"))
    settings.update(_layer(overrides or {}, "overrides"))
    if not settings["database_url"]:
        Path(settings["data_dir"]).mkdir(parents=True, exist_ok=True)
        settings["database_url"] = f"sqlite:///{Path(settings['data_dir']).resolve() / 'hub.db'}"
    if not settings["secret_key"]:
        settings["secret_key"] = _secret_from_file(Path(settings["data_dir"]) / "secret.key")
    return settings


def _layer(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} in {where}; known: {', '.join(sorted(DEFAULTS))}")
    return {key: _coerce(key, value) for key, value in data.items()}


def _secret_from_file(path: Path) -> str:
    """Read the signing secret, creating it (mode 0600) on first run."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value
