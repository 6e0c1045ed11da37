"""Import and export connectors, each a small class in an explicit registry.

A connector registers itself with ``@register``; the CLI and the server look
connectors up by name in ``REGISTRY``. Importing a module registers its connectors:
``feeds.stix_bundle`` (stix), ``feeds.iocs`` (csv, text, ecs), ``feeds.attack`` (attack), ``feeds.misp``
(misp) and ``feeds.taxii_source`` (taxii); ``feeds.cli`` imports them all. ``feeds.export`` serves the SIEM
feeds; ``feeds.schedule`` runs the saved TAXII sources inside the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Register a connector class under ``name``; a name may be taken only once."""

    def decorate(cls: T) -> T:
        if name in REGISTRY:
            raise ValueError(f"a feed connector named {name!r} is already registered")
        REGISTRY[name] = cls
        return cls

    return decorate
