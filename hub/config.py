"""Settings: defaults, then a TOML file, then ``CTI_HUB_*`` environment variables, then a test mapping.

Every setting is typed and range-checked (``Settings``, a pydantic model); a bad value is one
``ConfigError`` naming the setting, where it came from and what it allows. An unknown key in the file
is an error, so a typo never silently falls back to a default. In the environment, ``CTI_HUB_<KEY>``
names a setting; the older ``HUB_<KEY>`` still works for this release and logs a deprecation notice;
unknown ``HUB_*`` variables (other tools use the prefix, Kubernetes injects ``HUB_PORT`` for a Service
named ``hub``) are ignored, and so are the service links Kubernetes makes for a Service named
``cti-hub`` (``CTI_HUB_PORT``, ``CTI_HUB_SERVICE_HOST``...).

Secrets can also come from files (Docker and Kubernetes secrets): ``<key>_file`` in the TOML file or
``CTI_HUB_<KEY>_FILE`` in the environment names a file whose content (stripped) is the value.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX, OLD_PREFIX = "CTI_HUB_", "HUB_"
SECRETS = (
    "secret_key",
    "metrics_token",
    "database_url",
    "read_database_urls",
    "redis_url",
)  # settings that may come from a file
MASKED = (*SECRETS, "oidc_client_secret")  # settings ``config show`` never prints
# The variables Kubernetes defines for a Service named ``cti-hub``: never settings.
_SERVICE_LINK = re.compile(r"^(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)$")
_NOT_SETTINGS = {"CONFIG"}  # CTI_HUB_CONFIG / CTI_HUB_CONFIG name the settings file itself


class Settings(BaseModel):
    """Every setting with its type, default and allowed range (the README's settings table)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    data_dir: str = "./var"
    database_url: str = ""
    # PostgreSQL streaming replicas of database_url that answer reads (hub.replicas); empty: the primary only.
    read_database_urls: list[str] = Field(default_factory=list)
    max_replica_lag_seconds: int = Field(10, ge=1, le=3600)
    public_url: str = ""
    secret_key: str = ""
    max_page_size: int = Field(1000, ge=1, le=10_000)
    next_ttl_days: int = Field(7, ge=1, le=365)
    status_retention_days: int = Field(7, ge=1, le=3650)
    trusted_proxies: int = Field(0, ge=0, le=10)
    client_cert_header: str = ""
    client_cert_proxies: str = ""
    login_failure_limit: int = Field(20, ge=1, le=1_000_000)
    login_failure_window_seconds: int = Field(300, ge=1, le=86_400)
    # Panel accounts must sign in with a second factor (TOTP); an account without one enrols at its next login.
    admin_mfa_required: bool = True
    rate_limit_per_minute: int = Field(600, ge=0)
    redis_url: str = ""  # the rate-limit counters shared by every process (hub.ratelimit); empty: per process
    discovery_title: str = "cti-hub"
    discovery_description: str = "Regional threat-intelligence sharing hub (TAXII 2.1)"
    metrics_token: str = ""
    feeds_sync_interval_seconds: int = Field(0, ge=0, le=7 * 86_400)
    # Per-partner quotas on what makes every partner's reads and every snapshot rebuild more work. A CERT
    # uses a handful of sharing markings (one per audience it shares with) and a few dozen combinations of
    # them; 500 markings and 2,000 combinations leave ten times the largest real use (the demo world
    # uses 12 and 30) while bounding the hub-wide total for a few dozen partners. 0 turns a quota off.
    max_sharing_markings_per_partner: int = Field(500, ge=0)
    max_restriction_sets_per_partner: int = Field(2000, ge=0)
    # Single sign-on to the panel (OpenID Connect); empty oidc_issuer: off. Checked by hub.oidc.load.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_client_secret_file: str = ""  # read by hub.oidc, which refuses it beside oidc_client_secret
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "groups"
    oidc_role_map: str = ""
    oidc_provider_name: str = ""

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be empty or an http(s) URL with a host, such as https://cti.example.org")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be empty or a Redis URL, such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value:
            from hub import db

            try:
                db.engine_url(value)
            except ConfigError as exc:
                raise ValueError(exc.message.removeprefix("database_url").lstrip(": ")) from None
        return value

    @field_validator("read_database_urls", mode="before")
    @classmethod
    def _read_database_urls(cls, value: Any) -> Any:
        # The environment (and a secret file) gives one string: URLs separated by commas or white space.
        value = _urls(value) if isinstance(value, str) else value
        if not isinstance(value, list):
            return value  # pydantic names the type error
        from hub import db

        for url in value:
            if not isinstance(url, str):
                continue
            try:
                engine_url = db.engine_url(url)
            except ConfigError as exc:
                raise ValueError(exc.message.removeprefix("database_url").lstrip(": ")) from None
            if not engine_url.startswith("postgresql"):
                raise ValueError(f"{masked('database_url', url)} is not a PostgreSQL URL: replicas are PostgreSQL only")
        return value


DEFAULTS: dict[str, Any] = Settings.model_construct().model_dump()
_FIELDS = Settings.model_fields


def load(file: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the effective settings."""
    return load_with_sources(file, overrides)[0]


def load_with_sources(
    file: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the effective settings and, for each, where its value came from."""
    values: dict[str, Any] = {}
    sources = dict.fromkeys(DEFAULTS, "default")
    path = file or os.environ.get(PREFIX + "CONFIG") or os.environ.get(OLD_PREFIX + "CONFIG")
    if path:
        _merge(values, sources, _file_layer(str(path)))
    _merge(values, sources, _environment())
    _merge(values, sources, {k: (v, "overrides") for k, v in (overrides or {}).items()})
    settings = _validated(values, sources)
    if not settings["database_url"]:
        Path(settings["data_dir"]).mkdir(parents=True, exist_ok=True)
        settings["database_url"] = f"sqlite:///{Path(settings['data_dir']).resolve() / 'hub.db'}"
    if settings["read_database_urls"] and not settings["database_url"].startswith(("postgres://", "postgresql")):
        raise ConfigError(
            f"setting 'read_database_urls' ({sources['read_database_urls']}) names PostgreSQL replicas, "
            "but database_url is not PostgreSQL: replicas need their PostgreSQL primary as database_url"
        )
    if not settings["secret_key"]:
        settings["secret_key"] = _secret_from_file(Path(settings["data_dir"]) / "secret.key")
        sources["secret_key"] = f"file {Path(settings['data_dir']) / 'secret.key'}"
    return settings, sources


def _merge(values: dict[str, Any], sources: dict[str, str], layer: Mapping[str, tuple[Any, str]]) -> None:
    for key, (value, where) in layer.items():
        values[key], sources[key] = value, where


def _file_layer(path: str) -> dict[str, tuple[Any, str]]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from None
    where = f"settings file {path}"
    layer: dict[str, tuple[Any, str]] = {}
    for key, value in data.items():
        name = key.removesuffix("_file") if key.endswith("_file") and key.removesuffix("_file") in SECRETS else key
        if name not in DEFAULTS:
            raise ConfigError(f"unknown setting {key!r} in {where}; known: {', '.join(sorted(DEFAULTS))}")
        layer[name] = (_read_secret(value, f"{key} in {where}") if name != key else value, where)
    return layer


def _environment() -> dict[str, tuple[Any, str]]:
    layer: dict[str, tuple[Any, str]] = {}
    old: list[str] = []
    # HUB_* first, so that CTI_HUB_* wins when both name a setting.
    for prefix in (OLD_PREFIX, PREFIX):
        for var, value in sorted(os.environ.items()):
            if not var.startswith(prefix) or (prefix == OLD_PREFIX and var.startswith(PREFIX)):
                continue
            rest = var.removeprefix(prefix)
            if rest in _NOT_SETTINGS or rest.startswith("TEST_"):
                continue
            key = rest.lower()
            name = key.removesuffix("_file") if key.endswith("_file") and key[:-5] in SECRETS else key
            if name not in DEFAULTS:
                if prefix == PREFIX and not _SERVICE_LINK.match(rest):
                    raise ConfigError(
                        f"unknown setting {var}; known: {', '.join(PREFIX + k.upper() for k in DEFAULTS)}"
                    )
                continue  # another tool's HUB_* variable, or a Kubernetes service link
            if prefix == OLD_PREFIX:
                old.append(var)
            layer[name] = (_read_secret(value, var) if name != key else value, f"environment {var}")
    if old:
        log.warning("deprecated environment variables %s: use %s instead", ", ".join(old), PREFIX + "<KEY>")
    return layer


def _read_secret(path: Any, where: str) -> str:
    try:
        return Path(str(path)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None


def _validated(values: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        where = sources.get(unknown[0], "overrides")
        raise ConfigError(f"unknown setting {unknown[0]!r} in {where}; known: {', '.join(sorted(DEFAULTS))}")
    for key, value in values.items():
        if _FIELDS[key].annotation in (int, "int") and isinstance(value, str):
            values[key] = value.strip()
        if type(DEFAULTS[key]) is int and isinstance(value, bool):
            raise ConfigError(f"setting {key!r} ({sources[key]}) must be a whole number, got {value!r}")
    try:
        return Settings.model_validate(values).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        got = values.get(key)
        shown = masked(key, _urls(got)) if key == "read_database_urls" and isinstance(got, str | list) else repr(got)
        raise ConfigError(
            f"setting {key!r} ({sources.get(key, 'overrides')}) {_allowed(key, error)}, got {shown}"
        ) from None


def _urls(value: str | list) -> list:
    return [part for part in re.split(r"[\s,]+", value) if part] if isinstance(value, str) else value


def _allowed(key: str, error: Any) -> str:
    """What the setting accepts, in words: its type and range."""
    if error["type"].startswith("int") or error["type"] in ("greater_than_equal", "less_than_equal"):
        low = next((m.ge for m in _FIELDS[key].metadata if hasattr(m, "ge")), None)
        high = next((m.le for m in _FIELDS[key].metadata if hasattr(m, "le")), None)
        if low is not None and high is not None:
            return f"must be a whole number from {low:,} to {high:,}"
        if low is not None:
            return f"must be a whole number of at least {low:,}"
        return "must be a whole number"
    return str(error["msg"]).removeprefix("Value error, ")


def masked(key: str, value: Any) -> str:
    """A setting's value as ``config show`` prints it: secrets hidden, passwords in URLs too."""
    if key == "database_url" and value:
        from sqlalchemy import exc, make_url

        try:
            return make_url(str(value)).render_as_string(hide_password=True)
        except exc.ArgumentError:
            return "********"
    if key == "read_database_urls":
        shown = (repr(masked("database_url", url)) if isinstance(url, str) else repr(url) for url in value)
        return "[" + ", ".join(shown) + "]"
    if key in MASKED and value:
        return "********"
    return repr(value) if isinstance(value, str) else str(value)


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
