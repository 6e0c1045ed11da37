"""``cti-hub demo``: a working hub in one command, with DPRK demo intelligence and keys to pull it."""

from __future__ import annotations

import secrets
import sys
import zlib
from collections.abc import Callable

from sqlalchemy import func, select

from hub import accounts, ingest, mfa, sharing
from hub import models as m
from hub.demo import data as demo_data
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import snapshots

DEMO_READERS = ("krcert", "singcert")
DEMO_ADMIN = "admin"


def run(hub: Hub, file: str, count: int, url: str, *, echo: Callable[[str], None] = print) -> None:
    """Apply the sharing file, load demo objects once, issue demo keys and print how to connect."""
    spec = sharing.load(file)
    with hub.session() as session:
        changes = sharing.apply(session, spec, actor="demo")
    echo(f"sharing configuration applied from {file}: {len(changes)} change(s)")
    with hub.session() as session:
        snap = hub.snapshot(session)
        stored = session.execute(
            select(func.count())
            .select_from(m.ObjectVersion)
            .join(m.Collection)
            .where(m.Collection.is_reference.is_(False), m.Collection.is_feedback.is_(False))
        ).scalar_one()
    if stored == 0:
        loaded = load_objects(hub, snap, count)
        echo(f"loaded {loaded} demo object versions (synthetic DPRK indicators)")
    else:
        echo(f"{stored} object versions already stored; demo data not reloaded")
    _print_access(hub, snap, url, echo)
    _print_admin(hub, url, echo)


def demo_admin(hub: Hub) -> tuple[str, mfa.Enrolment | None]:
    """Create the demo administrator, or give it a new password; return the password (random, shown once).

    With ``admin_mfa_required`` on, the administrator also gets a new authenticator at each run (the
    earlier one stops working), returned beside the password so that the printed login works at once.
    """
    password = secrets.token_urlsafe(18)
    enrolment = None
    with hub.session() as session:
        exists = session.execute(select(m.AdminUser.id).where(m.AdminUser.username == DEMO_ADMIN)).scalar()
        if exists is None:
            accounts.create_admin(session, DEMO_ADMIN, password, "admin")
        else:
            accounts.reset_admin_password(session, DEMO_ADMIN, password, actor="demo")
        if hub.settings.get("admin_mfa_required"):
            enrolment = mfa.enrol_new(session, hub.pepper, DEMO_ADMIN, actor="demo", via="demo")
    return password, enrolment


def _print_admin(hub: Hub, url: str, echo: Callable[[str], None]) -> None:
    password, enrolment = demo_admin(hub)
    echo("")
    echo(f"Admin panel: {url.rstrip('/')}/admin/    user: {DEMO_ADMIN}    password: {password}")
    if enrolment is not None:
        echo(f"  second factor (TOTP, admin_mfa_required is on): {enrolment.uri}")
        echo("  add it to an authenticator app (QR code below), or print the current code with")
        echo(f"  {sys.executable} -c \"import pyotp; print(pyotp.TOTP('{enrolment.secret}').now())\"")
        echo(f"  recovery codes (one login each): {' '.join(enrolment.recovery_codes)}")
        echo(mfa.qr_terminal(enrolment.uri))
    echo("  (a new password at each `cti-hub demo`; create real accounts with `cti-hub admin create`)")


def load_objects(hub: Hub, snap: snapshots.Snapshot, count: int) -> int:
    """Publish demo objects into every ordinary collection, each by the partners allowed to write it."""
    collections = [c for c in snap.collections.values() if not (c.is_reference or c.is_feedback)]
    group_markings = [g.marking_id for g in _groups(hub)]
    total = 0
    for collection in sorted(collections, key=lambda c: c.alias):
        writers = [
            p for p in snap.partners.values() if p.kind != "hub" and snap.world.granted(collection.rules.writers, p)
        ]
        if not writers:
            continue
        share = max(1, count // max(1, len(collections)) // len(writers))
        mix = _mix(collection.rules.max_tlp)
        for publisher in sorted(writers, key=lambda p: p.slug):
            row = snap.partner_rows[publisher.id]
            stream = demo_data.indicators(
                share,
                publishers=[demo_data.Publisher(row.slug, row.identity_id)],
                seed=zlib.crc32(f"{collection.uuid}/{row.slug}".encode()),
                tlp_mix=mix,
                sharing_markings=group_markings,
                sharing_ratio=0.15 if group_markings else 0.0,
            )
            objects = demo_data.actors() + list(stream)
            for envelope in demo_data.envelope_chunks(objects, 1000):
                result = ingest.ingest_envelope(hub, publisher.id, collection.uuid, envelope["objects"])
                total += len(result.successes)
    return total


def _mix(max_tlp: TLP) -> dict[TLP, float]:
    weights = {TLP.CLEAR: 0.15, TLP.GREEN: 0.5, TLP.AMBER: 0.25, TLP.AMBER_STRICT: 0.1}
    allowed = {level: w for level, w in weights.items() if level <= max_tlp}
    total = sum(allowed.values())
    return {level: w / total for level, w in allowed.items()}


def _groups(hub: Hub) -> list[m.TrustGroup]:
    with hub.session() as session:
        return list(session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.slug)))


def _print_access(hub: Hub, snap: snapshots.Snapshot, url: str, echo: Callable[[str], None]) -> None:
    url = url.rstrip("/")
    root = sorted(snap.roots)[0]
    echo("")
    echo(f"Discovery: {url}/taxii2/    API root: {url}/{root}/")
    for c in snap.collections_of(root):
        echo(f"  collection {c.uuid}  alias={c.alias:<14} max {c.rules.max_tlp.label:<17} {c.title}")
    first = next(c for c in snap.collections_of(root) if not (c.is_reference or c.is_feedback))
    for slug in DEMO_READERS:
        if slug not in snap.by_slug:
            continue
        with hub.session() as session:
            _key_id, secret = accounts.create_key(session, hub.pepper, slug, label="demo", actor="demo")
        clearance = snap.partner(slug).clearance.label
        echo("")
        echo(f"Partner {slug} (clearance {clearance}) key: {secret}")
        echo(f"  curl -u {slug}:{secret} -H 'Accept: application/taxii+json;version=2.1' \\")
        echo(f"       '{url}/{root}/collections/{first.uuid}/objects/?limit=5'")
        echo(
            f'  python -c "from taxii2client.v21 import Collection; '
            f"c = Collection('{url}/{root}/collections/{first.uuid}/', user='{slug}', password='{secret}'); "
            f"print(len(c.get_objects()['objects']))\""
        )
    echo("")
    echo(
        "Microsoft Sentinel (Threat Intelligence - TAXII): API root URL as above, collection id as above, "
        "user = partner id, password = key."
    )
