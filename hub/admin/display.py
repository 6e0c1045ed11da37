"""How the panel shows times and TLP levels."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.policy import TLP


def tlp_name(level: int | TLP | None) -> str:
    return "" if level is None else TLP(level).name.replace("_", "+")


def when(us: int | None) -> str:
    if not us:
        return ""
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
