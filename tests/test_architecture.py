"""The layout holds: imports run one way (no cycle among hub and feeds modules), no module grows past 500
lines, and the sharing rules (``hub.policy``) stay pure, importing neither the web framework nor the
database layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "feeds")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def imports_of(name: str) -> set[str]:
    """Every module of ours that ``name`` imports, at the top or inside a function (a late import is
    still an import: it only hides a cycle)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                # ``from hub import ingest`` imports the module hub.ingest; ``from hub.x import f`` imports hub.x
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def _cycle() -> list[str] | None:
    graph = {name: sorted(imports_of(name)) for name in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for name in graph:
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_import_graph_sees_every_module_and_its_imports():
    # Guards the check below against passing because it reads nothing.
    assert {"hub.policy", "hub.ingest.rows", "hub.ledger", "feeds.export", "hub.sharing.apply"} <= set(MODULES)
    assert "hub.runtime" in imports_of("feeds.export")
    assert "hub.sharing.write" in imports_of("hub.sharing.apply")


def test_no_import_cycle_among_hub_and_feeds_modules():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", ["hub.policy", "hub.acs"])
def test_the_sharing_rules_import_neither_flask_nor_sqlalchemy(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] in ("flask", "sqlalchemy", "medallion")}, names
    allowed = {"hub.stix", "hub.errors", "hub.acs"} | {m for m in MODULES if m.startswith("hub.stix.")}
    assert imports_of(module) <= allowed - {module}


# --------------------------------------------------------------------- the test suite's own layout

TESTS = ROOT / "tests"
# Test modules another test module may still import (the import is to move into a helper module).
IMPORTABLE_TEST_MODULES = {"tests.test_sharing_property"}


def _is_test_module(name: str) -> bool:
    return name.split(".")[0] == "tests" and name.rpartition(".")[2].startswith("test_")


def imported_test_modules(source: str, name: str) -> set[str]:
    """The ``test_*`` modules that the module ``name`` (``tests.x`` or ``tests.security.x``) imports."""
    package = name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from tests import test_x``
    # ``import tests.test_x.y`` and ``from tests.test_x.y import z`` import tests.test_x as well
    found |= {".".join(m.split(".")[: i + 1]) for m in found for i in range(len(m.split(".")))}
    return {m for m in found if _is_test_module(m) and m != name}


def _test_files() -> dict[str, Path]:
    return {".".join(path.relative_to(ROOT).with_suffix("").parts): path for path in sorted(TESTS.rglob("test_*.py"))}


def test_the_test_import_check_sees_every_form_of_import():
    # Guards the check below against passing because it recognises nothing.
    source = (
        "import tests.test_a\nfrom tests import test_b as b, factories\nfrom tests.test_c import x\n"
        "from tests.security.test_d import y\nfrom . import test_e\nfrom .test_f import z\n"
        "from tests import worlds, panel\nfrom tests.security.probes import basic\n"
    )
    assert imported_test_modules(source, "tests.security.test_z") == {
        "tests.test_a",
        "tests.test_b",
        "tests.test_c",
        "tests.security.test_d",
        "tests.security.test_e",
        "tests.security.test_f",
    }
    files = _test_files()
    assert {"tests.test_architecture", "tests.test_admin", "tests.security.test_read_isolation"} <= set(files)


def test_no_test_module_imports_another():
    """Shared helpers live in helper modules (tests/worlds.py, tests/live.py, ...) and fixtures in conftest.py."""
    found = {}
    for name, path in _test_files().items():
        imported = imported_test_modules(path.read_text(encoding="utf-8"), name) - IMPORTABLE_TEST_MODULES
        if imported:
            found[name] = sorted(imported)
    assert not found, f"test modules importing test modules: {found}"


MAX_LINES = 500


def test_no_module_is_over_500_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert len(sizes) > 50  # the check reads the whole tree
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by job): {too_long}"
