"""The dependencies: what pyproject.toml declares, what uv.lock pins, and the oldest versions it allows.

- every third-party module that hub/ and feeds/ import comes with the runtime dependencies, except
  misp-stix: the ``[misp]`` extra, imported by ``feeds.misp`` only, on first use (stix2 is not among
  them: only the tests use it);
- uv.lock is in step with pyproject.toml (``uv lock --check``, offline), and ``make install`` installs
  exactly what it pins, checked against its hashes;
- the lowest versions pyproject.toml allows install together (``uv pip install --resolution
  lowest-direct``, from PyPI) and the TAXII, sharing, CLI and MISP tests pass on them (marked ``slow``
  and ``pypi``: it downloads from PyPI; 4 to 8 minutes on a busy 2-core machine).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from uv import find_uv_bin

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
UV = find_uv_bin()
# The modules a lazily imported extra provides, with the one module allowed to import them.
EXTRA_MODULES = {"misp_stix_converter": ("misp", "feeds/misp.py")}
# Run on the lowest versions: the TAXII endpoints, the sharing rules, the CLI's errors and the MISP
# connector (misp-stix and the STIX 1 libraries at their oldest).
LOWEST_SUBSET = (
    "tests/test_taxii.py",
    "tests/test_policy.py",
    "tests/test_cli_errors.py",
    "tests/test_feeds_misp.py",
)


def requirements(extra: str | None = None) -> list[Requirement]:
    declared = PYPROJECT["dependencies"] if extra is None else PYPROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in declared]


def uv(*args: str, cwd: Path = ROOT, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    return subprocess.run(
        [UV, *args], cwd=cwd, env={**environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )


# --------------------------------------------------------------------- imports


def third_party_imports() -> list[tuple[str, str, bool]]:
    """(file, top-level module, imported at module level) for each import of another project."""
    found = []
    for package in ("hub", "feeds"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top_level = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("hub", "feeds", "__future__"):
                        found.append((str(path.relative_to(ROOT)), top, id(node) in top_level))
    return found


def closure(roots: list[Requirement]) -> set[str]:
    """The installed distributions ``roots`` bring, following each one's requirements and extras."""
    seen: set[str] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while todo:
        name, extras = todo.pop()
        key = f"{name}{sorted(extras)}"
        if key in seen:
            continue
        seen.add(key)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in (*extras, "")):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {key.partition("[")[0] for key in seen}


def test_the_runtime_dependencies_provide_every_module_the_hub_imports() -> None:
    runtime = closure(requirements())
    providers = importlib.metadata.packages_distributions()
    missing, misplaced = [], []
    for file, module, at_top in third_party_imports():
        if module in EXTRA_MODULES:
            extra, allowed = EXTRA_MODULES[module]
            if file != allowed or at_top:
                misplaced.append(f"{file} imports {module} ([{extra}] extra) outside a function of {allowed}")
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & runtime:
            missing.append(f"{file} imports {module} ({', '.join(sorted(dists)) or 'not installed'})")
    assert not misplaced, misplaced
    assert not missing, f"not brought by [project.dependencies]: {missing}"


def test_misp_stix_and_stix2_are_not_installed_with_the_runtime_dependencies() -> None:
    runtime = closure(requirements())
    assert "misp-stix" not in runtime and "stix2" not in runtime
    assert "misp-stix" in closure(requirements("misp"))
    assert "stix2" in {canonicalize_name(r.name) for r in requirements("test")}
    assert Requirement("cti-hub[misp]") in requirements("test")  # the tests of the MISP connector need it


# --------------------------------------------------------------------- the lock file


def test_the_lock_file_is_in_step_with_pyproject(tmp_path: Path) -> None:
    # Offline, with an empty cache: the check reads pyproject.toml and uv.lock only.
    result = uv("lock", "--check", "--offline", UV_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode == 0, f"uv.lock is out of step with pyproject.toml: run make lock\n{result.stderr}"


def test_the_lock_check_fails_when_pyproject_changes(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    text = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(text.replace('"pyotp>=2.9"', '"pyotp>=2.8"'), encoding="utf-8")
    result = uv("lock", "--check", "--offline", cwd=tmp_path, UV_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode != 0


def locked_version(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    (version,) = {p["version"] for p in lock["package"] if p["name"] == name}
    return version


def test_make_install_installs_the_locked_versions_with_their_hashes() -> None:
    recipe = subprocess.run(
        ["make", "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f"pip install -q 'uv=={locked_version('uv')}'" in recipe  # the uv the lock pins
    assert re.search(r"uv export --locked .*--extra misp --extra test --no-emit-project", recipe)
    assert re.search(r"uv pip install .*--require-hashes -r \S+requirements.txt", recipe)
    assert re.search(r"uv pip install .*--no-deps -e \.", recipe)


def test_uv_exports_every_locked_package_with_hashes(tmp_path: Path) -> None:
    result = uv("export", "--locked", "--offline", "--extra", "misp", "--no-emit-project", "--quiet")
    assert result.returncode == 0, result.stderr
    entries = [e for e in re.split(r"^(?=[a-z0-9])", result.stdout, flags=re.M) if re.match(r"[a-z0-9]", e)]
    pins = dict(re.match(r"([a-z0-9._-]+)==([^\s;]+)", e).groups() for e in entries)  # type: ignore[union-attr]
    assert pins["misp-stix"] == locked_version("misp-stix")
    assert "stix2-patterns" in pins and "pytest" not in pins  # the runtime and [misp], not the test tools
    assert all("--hash=sha256:" in entry for entry in entries)


# --------------------------------------------------------------------- the lowest versions


def lower_bound(requirement: Requirement) -> Version:
    (bound,) = [s.version for s in requirement.specifier if s.operator == ">="]
    return Version(bound)


@pytest.mark.slow
@pytest.mark.pypi
def test_the_lowest_declared_versions_install_and_pass(tmp_path: Path, db_engine_name: str) -> None:
    """Each direct dependency at its lower bound, from PyPI; the TAXII, sharing, CLI and MISP tests pass.

    Once per suite, in the PostgreSQL lane: the installs are the same in both, and PostgreSQL is the engine
    whose driver (psycopg) is a dependency with a lower bound; SQLite's is the standard library's.
    """
    if db_engine_name != "postgres":
        pytest.skip("run once, in the PostgreSQL lane (--db=postgres): the same installs as there")
    source = tmp_path / "src"  # a copy: building the package writes build/ and *.egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("hub", "feeds"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    created = uv("venv", "--quiet", "--python", sys.executable, str(venv))
    assert created.returncode == 0, created.stderr
    installed = uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        "--resolution",
        "lowest-direct",
        "--compile-bytecode",  # as pip does: third-party modules then compile without warnings
        f"{source}[test]",
        timeout=600,
    )
    assert installed.returncode == 0, f"the lowest declared versions do not install together:\n{installed.stderr}"

    script = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"
    listing = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    versions = {canonicalize_name(k): Version(v) for k, v in json.loads(listing.stdout).items()}
    wrong = [
        f"{r.name}: declared >={lower_bound(r)}, lowest installable {versions[canonicalize_name(r.name)]}"
        for r in [*requirements(), *requirements("misp"), *requirements("test")]
        if canonicalize_name(r.name) != "cti-hub" and versions[canonicalize_name(r.name)] != lower_bound(r)
    ]
    assert not wrong, f"raise these lower bounds in pyproject.toml to what installs: {wrong}"

    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    log = tmp_path / "pytest.log"
    with log.open("w") as out:
        ran = subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", f"--db={db_engine_name}"]
            + list(LOWEST_SUBSET),
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
    tail = "\n".join(log.read_text().splitlines()[-30:])
    assert ran.returncode == 0, f"the tests fail on the lowest declared versions:\n{tail}"
    assert re.search(r"^\d+ passed", tail, re.M), tail
