"""The deployment files and the README agree with each other and with the code.

- docker-compose.yml validates with ``docker-compose config``;
- the compose service command and HUB_* variables are the ones the README documents;
- every HUB_* variable the README names is a real setting;
- config/hub.toml loads and lists every setting with its default;
- every ``cti-hub`` command the README shows exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from hub import config as hub_config
from hub.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMPOSE = ROOT / "docker-compose.yml"
HUB_TOML = ROOT / "config" / "hub.toml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Variables that are not settings: the settings-file path, the test database URL, and the Kubernetes
# service links the README says are ignored.
NON_SETTING_VARS = {"CTI_HUB_CONFIG", "HUB_TEST_POSTGRES", "CTI_HUB_PORT", "CTI_HUB_SERVICE_HOST"}
# Set in docker-compose.yml for a library rather than read by hub.config: prometheus_client's directory.
COMPOSE_NON_SETTING_VARS = {"PROMETHEUS_MULTIPROC_DIR"}
SETTING_VARS = {f"CTI_HUB_{key.upper()}" for key in hub_config.DEFAULTS}
SECRET_FILE_VARS = {f"CTI_HUB_{key.upper()}_FILE" for key in hub_config.SECRETS}
HUB_VAR = re.compile(r"\b(?:CTI_)?HUB_[A-Z][A-Z0-9_]*")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_section() -> str:
    """The README section about docker compose, up to the next second-level heading."""
    match = re.search(r"^## [^\n]*docker compose[^\n]*\n(.*?)(?=^## |\Z)", readme(), re.M | re.S | re.I)
    assert match, "README.md has no '## ... docker compose' section"
    return match.group(1)


def code_text(markdown: str) -> list[str]:
    """Every line of fenced code blocks and every inline code span."""
    out: list[str] = []
    fenced = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
    for block in fenced.findall(markdown):
        out += block.splitlines()
    rest = fenced.sub("", markdown)
    out += re.findall(r"`([^`\n]+)`", rest)
    return out


# --------------------------------------------------------------------- (a) docker-compose config


def _compose_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "CTI_HUB_"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("the docker-compose binary is not installed (Debian: apt-get install -y docker-compose)")
    return binary


def test_compose_file_validates(docker_compose: str) -> None:
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_compose_env(CTI_HUB_SECRET_KEY="test-secret"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret_key(docker_compose: str) -> None:
    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_compose_env(),
        timeout=120,
    )
    assert result.returncode != 0
    assert "set CTI_HUB_SECRET_KEY" in result.stderr


# --------------------------------------------------------------------- (b) compose file vs README


def test_compose_services_are_as_documented() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "db-replica", "hub"}
    replica = services["db-replica"]
    assert replica["profiles"] == ["replica"] and replica["image"] == "postgres:15"
    assert replica["depends_on"] == {"db": {"condition": "service_healthy"}}
    for mount in (*replica["volumes"], *services["db"]["volumes"]):
        source = mount.split(":")[0]
        assert not source.startswith("./") or (ROOT / source).is_file() or (ROOT / source).is_dir(), mount
    db = services["db"]
    assert db["image"] == "postgres:15"
    assert {k: db["environment"][k] for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")} == {
        "POSTGRES_USER": "hub",
        "POSTGRES_PASSWORD": "hub",
        "POSTGRES_DB": "hub",
    }
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    hub = services["hub"]
    assert hub["build"] == "."
    assert hub["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "./config:/app/config:ro" in hub["volumes"]
    assert "8000:8000" in hub["ports"]
    assert "/readyz" in " ".join(hub["healthcheck"]["test"])
    env = hub["environment"]
    assert env["CTI_HUB_DATABASE_URL"] == "postgresql://hub:hub@db:5432/hub"
    assert env["CTI_HUB_SECRET_KEY"] == "${CTI_HUB_SECRET_KEY:?set CTI_HUB_SECRET_KEY}"
    assert env["CTI_HUB_DATA_DIR"] == "/data"
    # The workers' metrics files on a tmpfs the hub's user can write (cti-hub serve empties it on start).
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/run/cti-hub-metrics"
    assert "/run/cti-hub-metrics:size=64m,mode=1777" in hub["tmpfs"]


def test_readme_compose_section_names_the_compose_command() -> None:
    command = compose()["services"]["hub"]["command"]
    assert command == "cti-hub serve --host 0.0.0.0 --port 8000 --workers 4"
    assert command in compose_section()


def test_every_compose_hub_variable_is_documented() -> None:
    env = compose()["services"]["hub"]["environment"]
    section, whole = compose_section(), readme()
    for name in env:
        assert name.startswith("CTI_HUB_") or name in COMPOSE_NON_SETTING_VARS, name
        assert name in section, f"{name} is set in docker-compose.yml but not described in the README's compose section"
        assert name in whole
    documented = set(HUB_VAR.findall(section))
    assert documented <= set(env) | NON_SETTING_VARS, documented - set(env)


def test_compose_hub_variables_are_settings() -> None:
    env = compose()["services"]["hub"]["environment"]
    assert set(env) - COMPOSE_NON_SETTING_VARS <= SETTING_VARS, set(env) - SETTING_VARS


def test_dockerfile_runs_the_documented_server_as_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert re.search(r"^COPY pyproject\.toml uv\.lock README\.md \./$", text, re.M)
    assert re.search(r"^ARG EXTRAS=misp$", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    assert 'CMD ["cti-hub", "serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    # pip install . needs these in the build context (pyproject's readme is README.md).
    for needed in ("pyproject.toml", "uv.lock", "README.md", "hub", "feeds", "config"):
        assert needed not in ignored, f".dockerignore drops {needed}, which the image needs"
    for secret_or_bulk in (".git", ".venv", "var", ".env"):
        assert secret_or_bulk in ignored, f".dockerignore should exclude {secret_or_bulk}"


def _install_step() -> str:
    """The Dockerfile's RUN instruction that installs the hub, as one shell command."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    (step,) = [line for line in text.splitlines() if line.startswith("RUN ") and "uv export" in line]
    return step.removeprefix("RUN ")


@pytest.mark.parametrize("extras", ["misp", ""])
def test_the_image_installs_the_locked_versions_with_their_hashes(tmp_path: Path, extras: str) -> None:
    """The image's install step, run with pip and uv replaced by recorders (no Docker engine here)."""
    shutil.copy(ROOT / "uv.lock", tmp_path / "uv.lock")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("pip", "uv"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls"\n')
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "EXTRAS": extras}
    subprocess.run(["sh", "-ec", _install_step()], cwd=tmp_path, env=env, check=True, timeout=60)
    with (ROOT / "uv.lock").open("rb") as fh:
        (uv_version,) = {p["version"] for p in tomllib.load(fh)["package"] if p["name"] == "uv"}
    extra = " --extra misp" if extras else ""
    assert (tmp_path / "calls").read_text().splitlines() == [
        f"pip install uv=={uv_version}",
        f"uv export --locked --quiet --no-emit-project{extra} --output-file requirements.txt",
        "pip uninstall -y uv",
        "pip install --require-hashes --no-deps -r requirements.txt",
        "pip install --no-deps .",
    ]


def test_readme_says_the_image_is_not_built_in_ci() -> None:
    assert "no Docker engine" in compose_section()
    assert "no Docker engine" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# --------------------------------------------------------------------- (c) README variables are settings


def test_readme_hub_variables_are_real_settings() -> None:
    named = set(HUB_VAR.findall(readme()))
    assert named, "the README names no HUB_* variable"
    # HUB_TEST_* belong to the test suite (hub.config ignores them).
    unknown = {n for n in named - SETTING_VARS - NON_SETTING_VARS - SECRET_FILE_VARS if n.startswith("CTI_HUB_")}
    assert not unknown, f"the README names HUB_* variables that are not settings: {sorted(unknown)}"


def test_readme_documents_every_setting() -> None:
    text = readme()
    for key, var in ((k, f"CTI_HUB_{k.upper()}") for k in hub_config.DEFAULTS):
        row = re.search(rf"^\| `{key}` \| `{var}` \|", text, re.M)
        assert row, f"the README's settings table lacks `{key}` / `{var}`"


# --------------------------------------------------------------------- (d) config/hub.toml


def test_hub_toml_lists_every_setting_with_its_default() -> None:
    with HUB_TOML.open("rb") as fh:
        data = tomllib.load(fh)
    assert data == hub_config.DEFAULTS


def test_hub_toml_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("HUB_", "CTI_HUB_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # data_dir is ./var: keep the generated files out of the repository
    settings = hub_config.load(HUB_TOML)
    assert set(settings) == set(hub_config.DEFAULTS)
    for key, default in hub_config.DEFAULTS.items():
        if default != "":
            assert settings[key] == default, key
    assert settings["database_url"] == f"sqlite:///{(tmp_path / 'var' / 'hub.db').resolve()}"


def test_hub_toml_comments_every_key() -> None:
    lines = HUB_TOML.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        key = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if key and key.group(1) in hub_config.DEFAULTS and not line.startswith("#"):
            assert index > 0 and lines[index - 1].startswith("#"), f"{key.group(1)} has no comment above it"
            assert f"CTI_HUB_{key.group(1).upper()}" in "\n".join(lines[max(0, index - 8) : index])


# --------------------------------------------------------------------- (e) README commands exist


def readme_commands() -> set[tuple[str, ...]]:
    """The command paths (``("keys", "create")``) of every ``cti-hub`` invocation in the README's code."""
    found: set[tuple[str, ...]] = set()
    for line in code_text(readme()):
        for match in re.finditer(r"(?<![\w./-])cti-hub((?:[ \t]+\S+)*)", line):
            found.add(_command_path(match.group(1).split()))
    return found


def _command_path(words: list[str]) -> tuple[str, ...]:
    """Follow the words through the click groups; an unknown name ends the path (and fails its test)."""
    command: click.Command | None = main
    path: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if not isinstance(command, click.Group):
            break
        if word.startswith("-"):
            if word == "--config":
                skip = True
                continue
            break
        name = re.match(r"[a-z][a-z0-9-]*", word)
        if name is None:
            break
        path.append(name.group(0))
        command = command.commands.get(name.group(0))
    return tuple(path)


def test_readme_shows_cti_hub_commands() -> None:
    commands = readme_commands()
    for expected in (("sharing", "apply"), ("sharing", "export"), ("keys", "create"), ("serve",)):
        assert expected in commands


@pytest.mark.parametrize("path", sorted(readme_commands()), ids=lambda p: " ".join(p) or "(root)")
def test_readme_command_exists(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_readme_lists_every_cli_command() -> None:
    def leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                out |= leaves(command, (*prefix, name))
            else:
                out.add((*prefix, name))
        return out

    missing = leaves(main) - readme_commands()
    assert not missing, f"the README's command reference lacks: {sorted(' '.join(p) for p in missing)}"
