"""The panel's dashboard: objects per collection and TLP, recent activity, the most linked intrusion sets."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import models as m
from hub import sharing
from hub.admin.data_accounts import partners
from hub.admin.display import tlp_name, when
from hub.policy import TLP
from hub.store import clock, snapshots

DAY_US = 86_400_000_000


def dashboard(session: Session, snap: snapshots.Snapshot, days: int = 14) -> dict[str, Any]:
    V = m.ObjectVersion
    now = clock.now_us()
    since = now - days * DAY_US
    per_day: dict[str, dict[str, int]] = {}
    # Counted in SQL per partner and day, over the (collection, date_added) index: a busy fortnight is
    # many versions, and the page reads one row per partner and day.
    day = (V.date_added // DAY_US).label("day")
    stmt = (
        select(V.originator_id, day, func.count())
        .where(V.collection_id.in_([c.pk for c in snap.collections.values()]), V.date_added >= since)
        .group_by(V.originator_id, day)
    )
    for originator, bucket, n in session.execute(stmt):
        slug = snap.partners[originator].slug if originator in snap.partners else "?"
        if slug == sharing.HUB_SLUG:
            continue
        per_day.setdefault(slug, {})
        per_day[slug][when(int(bucket) * DAY_US)[:10]] = n
    day_list = [when(now - i * DAY_US)[:10] for i in range(days - 1, -1, -1)]
    tlp_mix: dict[int, dict[int, int]] = {}
    for cid, level, n in session.execute(select(V.collection_id, V.tlp, func.count()).group_by(V.collection_id, V.tlp)):
        tlp_mix.setdefault(cid, {})[level] = n
    mix = []
    for info in sorted(snap.collections.values(), key=lambda c: (c.api_root, c.alias)):
        counts = tlp_mix.get(info.pk, {})
        mix.append(
            {
                "name": f"{info.api_root}/{info.alias}",
                "total": sum(counts.values()),
                "levels": [(tlp_name(t), counts.get(int(t), 0)) for t in TLP],
            }
        )
    polls = []
    for row in partners(session):
        p = row["row"]
        polls.append(
            {"slug": p.slug, "active": p.active, "live_keys": row["keys"], "last_used_us": row["last_used_us"]}
        )
    return {
        "days": day_list,
        "per_day": per_day,
        "mix": mix,
        "polls": polls,
        "never": [p["slug"] for p in polls if p["last_used_us"] is None],
        "intrusion_sets": intrusion_sets(session),
        "expiring": expiring_keys(session, now),
        "totals": {
            "partners": len(polls),
            "objects": session.scalar(select(func.count(func.distinct(V.stix_id)))) or 0,
            "live_keys": sum(p["live_keys"] for p in polls),
            "audit_24h": session.scalar(
                select(func.count()).select_from(m.AuditEvent).where(m.AuditEvent.at_us >= now - DAY_US)
            )
            or 0,
        },
    }


def expiring_keys(session: Session, now_us: int, days: int = 14) -> list[dict[str, Any]]:
    """Live keys that stop working within ``days``: rotate them before partners' SIEMs go blind."""
    k = m.ApiKey
    stmt = (
        select(k.key_id, k.label, k.expires_us, m.Partner.slug)
        .join(m.Partner)
        .where(k.revoked_us.is_(None), k.expires_us > now_us, k.expires_us <= now_us + days * DAY_US)
        .order_by(k.expires_us)
    )
    return [{"key_id": i, "label": label, "expires_us": e, "slug": slug} for i, label, e, slug in session.execute(stmt)]


def intrusion_sets(session: Session, limit: int = 10, window: int = 20_000) -> list[tuple[str, int]]:
    """The intrusion sets with the most distinct objects related to them (among the newest relationships)."""
    V = m.ObjectVersion
    names = {}
    for stix_id, raw in session.execute(select(V.stix_id, V.raw).where(V.type == "intrusion-set").limit(2000)):
        names[stix_id] = orjson.loads(raw).get("name", stix_id)
    if not names:
        return []
    counts: dict[str, set[str]] = {}
    # The newest ``window`` relationships by the (type, pk) index; only those naming an intrusion set are parsed.
    newest = select(V.pk).where(V.type == "relationship").order_by(V.pk.desc()).limit(window)
    stmt = select(V.raw).where(V.pk.in_(newest.scalar_subquery()), V.raw.contains('"intrusion-set--'))
    for raw in session.scalars(stmt):
        obj = orjson.loads(raw)
        for ref, other in (
            (obj.get("source_ref"), obj.get("target_ref")),
            (obj.get("target_ref"), obj.get("source_ref")),
        ):
            if ref in names and isinstance(other, str):
                counts.setdefault(ref, set()).add(other)
    ranked = sorted(((names[k], len(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:limit]
