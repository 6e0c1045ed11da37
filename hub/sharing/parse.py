"""Reading sharing.yaml: every problem found, each named with its ``file:line``.

:mod:`hub.sharing.yaml_reader` walks the YAML nodes; :mod:`hub.sharing.parse_partners` and
:mod:`hub.sharing.parse_collections` read the sections.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml import Node

from hub.errors import ConfigError
from hub.sharing.parse_collections import parse_roots
from hub.sharing.parse_partners import parse_groups, parse_partners
from hub.sharing.spec import SharingSpec
from hub.sharing.yaml_reader import Reader


def load(path: str | Path) -> SharingSpec:
    """Parse and validate a sharing configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sharing configuration {path}: {exc}") from None
    return loads(text, str(path))


def _syntax_error(source: str, exc: yaml.MarkedYAMLError) -> str:
    """Name the line where the broken construct starts (an unclosed quote's line, not the end of the file)."""
    start, found = exc.context_mark, exc.problem_mark
    if start is not None and exc.context and (found is None or found.line != start.line):
        where = f" (at line {found.line + 1})" if found is not None else ""
        return f"{source}:{start.line + 1}: {exc.context}, column {start.column + 1}: {exc.problem}{where}"
    mark = found or start
    line = f"{mark.line + 1}:" if mark is not None else ""
    return f"{source}:{line} {exc.problem or exc.context}"


def loads(text: str, source: str = "<string>") -> SharingSpec:
    """Parse and validate a sharing configuration given as text; ``source`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_error(source, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if root is None:
        raise ConfigError(f"{source}:1: the file is empty")
    reader = Reader(source)
    spec = _parse(reader, root)
    reader.fail()
    return spec


def _parse(r: Reader, root: Node) -> SharingSpec:
    top = r.mapping(root, "the file", ("hub",), ("partners", "trust_groups", "api_roots"))
    hub = r.mapping(top["hub"], "hub", ("name",), ("contact",)) if "hub" in top else {}
    name = r.text(hub.get("name"), "hub name")
    contact = r.text(hub.get("contact"), "hub contact", default="")
    partners = parse_partners(r, r.items(top.get("partners"), "partners"))
    known = {p.slug for p in partners}
    groups = parse_groups(r, r.items(top.get("trust_groups"), "trust_groups"), known)
    roots = parse_roots(r, r.items(top.get("api_roots"), "api_roots"), known, {g.slug for g in groups})
    return SharingSpec(name or "cti-hub", contact or "", tuple(partners), tuple(groups), tuple(roots), r.source)
