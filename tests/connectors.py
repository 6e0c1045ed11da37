"""Running the import connectors (feeds/) against a test hub and reading back what they stored."""

from __future__ import annotations

from pathlib import Path

import orjson
from sqlalchemy import select

from feeds import REGISTRY
from feeds.base import resolve_target
from hub import models as m
from hub.runtime import Hub


def run(hub: Hub, kind: str, source: str | Path, partner: str = "krcert", collection: str = "shared", **kwargs):
    target = resolve_target(hub, partner, collection, "dprk")
    return REGISTRY[kind](hub, target, **kwargs).run(str(source))


def stored(hub: Hub, alias: str = "shared") -> dict[str, dict]:
    with hub.session(write=False) as s:
        rows = s.execute(
            select(m.ObjectVersion.stix_id, m.ObjectVersion.raw)
            .join(m.Collection, m.Collection.id == m.ObjectVersion.collection_id)
            .where(m.Collection.alias == alias)
        )
        return {stix_id: orjson.loads(raw) for stix_id, raw in rows}
