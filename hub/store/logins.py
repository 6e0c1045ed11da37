"""API keys as the authenticator looks them up, and failed panel logins per source."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from hub import models as m
from hub.store import clock


def find_key(session: Session, secret_hash: str) -> Any:
    """Return the key with that hash joined to its partner's slug and state (one indexed lookup), or None.

    The row also carries the current sharing-rules version, so that a request learns in this one round
    trip both who calls and whether its cached snapshot is still current.
    """
    return session.connection().execute(_find_key_statement(), {"secret_hash": secret_hash}).first()


@functools.cache
def _find_key_statement() -> Any:
    """Built once: every authenticated request runs it."""
    k, p = m.ApiKey.__table__.c, m.Partner.__table__.c
    version = select(m.HubState.rules_version).where(m.HubState.id == 1).scalar_subquery()
    return (
        select(
            k.id,
            k.key_id,
            k.partner_id,
            k.read_only,
            k.cidrs,
            k.expires_us,
            k.revoked_us,
            k.last_used_us,
            k.created_us,
            k.cert_sha256,
            k.cert_subject,
            p.slug,
            p.active,
            version.label("rules_version"),
        )
        .join_from(m.ApiKey.__table__, m.Partner.__table__, k.partner_id == p.id)
        .where(k.secret_hash == bindparam("secret_hash"))
    )


def touch_key(session: Session, key_pk: int, at_us: int) -> None:
    session.execute(update(m.ApiKey).where(m.ApiKey.id == key_pk).values(last_used_us=at_us))


def record_login_failure(session: Session, source: str, window_us: int) -> int:
    """Count a failed login from ``source``; return the failures in the current window."""
    now = clock.now_us()
    row = session.get(m.LoginFailure, source)
    if row is None or now - row.window_us > window_us:
        if row is None:
            row = m.LoginFailure(source=source, window_us=now, count=0)
            session.add(row)
        row.window_us, row.count = now, 0
    row.count += 1
    return row.count


def login_failures(session: Session, source: str, window_us: int) -> tuple[int, int]:
    """Return (failures in the window, seconds until the window ends) for ``source``."""
    row = session.get(m.LoginFailure, source)
    if row is None:
        return 0, 0
    left = row.window_us + window_us - clock.now_us()
    return (row.count, max(1, left // 1_000_000)) if left > 0 else (0, 0)
