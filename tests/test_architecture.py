"""The layout holds: imports run one way (no cycle among hub and feeds modules), and the sharing rules
(``hub.policy``) stay pure, importing neither the web framework nor the database layer."""

from __future__ import annotations

import ast
from pathlib import Path

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
                # ``from hub import services`` imports the module hub.services; ``from hub.x import f`` imports hub.x
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
                return path[path.index(nxt):] + [nxt]
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
    assert {"hub.policy", "hub.services", "hub.ledger", "feeds.export", "hub.sharing.apply"} <= set(MODULES)
    assert "hub.services" in imports_of("feeds.export")
    assert "hub.sharing.write" in imports_of("hub.sharing.apply")


def test_no_import_cycle_among_hub_and_feeds_modules():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_sharing_rules_import_neither_flask_nor_sqlalchemy():
    tree = ast.parse(MODULES["hub.policy"].read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] in ("flask", "sqlalchemy", "medallion")}, names
    assert imports_of("hub.policy") <= {"hub.stix", "hub.errors"} | {m for m in MODULES if m.startswith("hub.stix.")}
