"""The one place that writes partners, trust groups, API roots and collections.

``cti-hub sharing apply`` (:mod:`hub.sharing.apply`) and the admin panel (:mod:`hub.admin.data_accounts`,
:mod:`hub.admin.data_sharing`) validate in their own terms (a file's lines, a form's fields) and then
write only through these functions, inside :func:`rules_change`, so a rule change has the same effects
whichever way it came: the rules version moves on (every worker's cached snapshot is stale), the
reference collections carry the new identities and group markings, and what the change made visible is
re-dated for partners.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub import models as m
from hub import reference, rule_change
from hub.policy import TLP
from hub.progress import Report, silent
from hub.sharing.spec import HUB_SLUG
from hub.store import clock, snapshots


def column(value: Any) -> Any:
    """Convert a rule value to what its column stores (TLP levels as numbers, lists as comma-joined text)."""
    if isinstance(value, TLP):
        return int(value)
    if isinstance(value, tuple | list):
        return ",".join(value)
    return value


@contextlib.contextmanager
def rules_change(session: Session, progress: Report = silent) -> Iterator[None]:
    """Wrap writes to the sharing rules; afterwards bump the rules, republish the reference data, re-date."""
    before = snapshots.load_snapshot(session)
    yield
    session.flush()
    snapshots.bump_rules(session)
    if session.execute(select(m.Partner.id).where(m.Partner.slug == HUB_SLUG)).first():
        reference.publish_reference(session)
    rule_change.reannounce(session, before, progress)


def set_columns(row: Any, values: dict[str, Any]) -> None:
    """Write rule values onto a partner, trust group, API root or collection row."""
    for name, value in values.items():
        setattr(row, name, column(value))


def add_partner(session: Session, slug: str, values: dict[str, Any]) -> m.Partner:
    row = m.Partner(slug=slug, created_us=clock.now_us(), **{k: column(v) for k, v in values.items()})
    session.add(row)
    session.flush()
    return row


def save_group(
    session: Session,
    row: m.TrustGroup | None,
    slug: str,
    name: str,
    countries: tuple[str, ...],
    members: tuple[str, ...],
    marking_id: str,
) -> m.TrustGroup:
    """Create (``row`` None) or update a trust group and replace its explicit members."""
    if row is None:
        row = m.TrustGroup(slug=slug)
        session.add(row)
    row.name = name
    row.countries = column(tuple(sorted({c.upper() for c in countries})))
    row.marking_id = marking_id
    session.flush()
    session.execute(delete(m.TrustGroupMember).where(m.TrustGroupMember.group_id == row.id))
    for partner_id in session.scalars(select(m.Partner.id).where(m.Partner.slug.in_(set(members)))):
        session.add(m.TrustGroupMember(group_id=row.id, partner_id=partner_id))
    session.flush()
    return row


def remove_group(session: Session, row: m.TrustGroup) -> None:
    session.execute(delete(m.TrustGroupMember).where(m.TrustGroupMember.group_id == row.id))
    session.delete(row)


def add_root(session: Session, slug: str, values: dict[str, Any]) -> m.ApiRoot:
    row = m.ApiRoot(slug=slug, **values)
    session.add(row)
    session.flush()
    return row


def add_collection(session: Session, root_id: int, alias: str, values: dict[str, Any]) -> m.Collection:
    row = m.Collection(api_root_id=root_id, alias=alias, **{k: column(v) for k, v in values.items()})
    session.add(row)
    session.flush()
    return row


def remove_collection(session: Session, row: m.Collection) -> None:
    # Only reference collections reach here with objects: the hub regenerates those.
    session.execute(delete(m.ObjectVersion).where(m.ObjectVersion.collection_id == row.id))
    session.execute(delete(m.Status).where(m.Status.collection_id == row.id))
    session.delete(row)


def remove_root(session: Session, row: m.ApiRoot) -> None:
    session.execute(delete(m.Status).where(m.Status.api_root_id == row.id))
    session.delete(row)
