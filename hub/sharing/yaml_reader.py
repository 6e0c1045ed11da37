"""Walking a composed YAML node tree for the sharing configuration: every problem kept with its line."""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml import Node

from hub.errors import ConfigError
from hub.policy import TLP


class Reader:
    """Walk a composed YAML node tree, collecting every problem with its line number."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[tuple[int, str]] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def error(self, node: Node, message: str) -> None:
        self.errors.append((node.start_mark.line + 1, message))

    def fail(self) -> None:
        """Raise one ConfigError listing every problem found, in file order."""
        if self.errors:
            lines = sorted(set(self.errors))
            raise ConfigError("\n".join(f"{self.source}:{line}: {msg}" for line, msg in lines))

    def mapping(self, node: Node, what: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Node]:
        """Return a mapping's values by key; unknown, duplicate and missing keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return {}
        known = required + optional
        out: dict[str, Node] = {}
        for key_node, value in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in known:
                shown = repr(key) if key is not None else "(not a name)"
                self.error(key_node, f"unknown key {shown} in {what} (known: {', '.join(known)})")
            elif key in out:
                self.error(key_node, f"duplicate key {key!r} in {what}")
            else:
                out[key] = value
        for key in required:
            if key not in out:
                self.error(node, f"{what} lacks the required key {key!r}")
        return out

    def items(self, node: Node | None, what: str) -> list[Node]:
        """Return a sequence's items; an absent or empty value is an empty list."""
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{what} must be a list")
            return []
        return list(node.value)

    def text(
        self,
        node: Node | None,
        what: str,
        *,
        max_len: int = 200,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        default: str | None = None,
    ) -> str | None:
        """Return a scalar as text exactly as written (so ``NO`` stays Norway, not false).

        ``default`` is returned for an absent or empty optional value; a required one
        (``default=None``) that is empty is an error, and an absent one was already
        reported by ``mapping``.
        """
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{what} must be a single value")
            return None
        value = "" if self.is_null(node) else node.value.strip()
        if not value:
            if default is None:
                self.error(node, f"{what} must not be empty")
            return default
        if len(value) > max_len or (pattern is not None and not pattern.fullmatch(value)):
            self.error(node, f"bad {what}: {value!r}" + (f" ({hint})" if hint else ""))
            return None
        return value

    def flag(self, node: Node, what: str) -> bool | None:
        value = self._scalar(node)
        if not isinstance(value, bool):
            self.error(node, f"{what} must be true or false")
            return None
        return value

    def integer(self, node: Node, what: str) -> int | None:
        value = self._scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.error(node, f"{what} must be a positive integer")
            return None
        return value

    def bounded(self, node: Node, what: str, low: int, high: int, hint: str) -> int | None:
        """Return a whole number from ``low`` to ``high``, or None after reporting ``bad {what}: ... ({hint})``.

        ``hint`` may name the bounds as ``{low}`` and ``{high}``.
        """
        value = self._scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            shown = node.value if isinstance(node, yaml.ScalarNode) else "(not a single value)"
            self.error(node, f"bad {what}: {shown!r} ({hint.format(low=low, high=high)})")
            return None
        return value

    def tlp(self, node: Node, what: str) -> TLP | None:
        text = self.text(node, what, max_len=40)
        if text is None:
            return None
        try:
            return TLP.parse(text)
        except ValueError as exc:
            self.error(node, f"{what}: {exc}")
            return None

    def _scalar(self, node: Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError:  # an explicit tag SafeLoader refuses, e.g. !!python/name
            return None

    @staticmethod
    def is_null(node: Node) -> bool:
        """Say whether ``node`` is an explicit or empty YAML null."""
        return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def peek(node: Node, key: str) -> str | None:
    """Return a mapping's scalar ``key`` before validation, to name the entity in messages."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.ScalarNode):
                return str(v.value)
    return None


def unique(r: Reader, node: Node, kind: str, value: str, seen: dict[str, int], where: str = "") -> None:
    """Record ``value``'s line in ``seen``, or report it as a duplicate of the line already there."""
    if value in seen:
        r.error(node, f"duplicate {kind} {value!r}{where} (first defined on line {seen[value]})")
    else:
        seen[value] = node.start_mark.line + 1
