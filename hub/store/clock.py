"""The hub clock: one row whose lock every writer takes, and the ``date_added`` values handed out under it.

Writes that add object versions first lock the clock row: writers queue on that lock, take their
``date_added`` values under it and commit before the next writer reads the clock. So ``date_added``
is unique and commits happen in ``date_added`` order: a reader that has seen a value never sees a
smaller one appear later. The audit chain and ``bump_rules`` lock the same row, so every writer
queues on one lock, in one order.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub import models as m


def now_us() -> int:
    return time.time_ns() // 1000


def lock_clock(session: Session) -> int:
    """Take the hub-wide writer lock and return the last ``date_added`` handed out."""
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(clock_us=m.HubState.clock_us))
    return session.execute(select(m.HubState.clock_us).where(m.HubState.id == 1)).scalar_one()


def set_clock(session: Session, value: int) -> None:
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(clock_us=value))


# The largest gap between two consecutive hub-clock values is 2**GAP_BITS microseconds.
GAP_BITS = 6


def add_dated(session: Session, rows: list[dict], key: str = "date_added") -> int:
    """Give each row the next hub-clock value under ``key``, in order; return the first value given.

    Takes the writer lock. Values are unique and increasing, and consecutive ones lie 1 to 64 µs
    apart at random, so the gap between two values a partner sees does not tell it how many
    values were handed out in between to objects it cannot see (SECURITY.md "Side channels").
    """
    clock = lock_clock(session)
    if not rows:
        return clock
    at = max(now_us(), clock)
    mask = (1 << GAP_BITS) - 1
    for row, noise in zip(rows, os.urandom(len(rows)), strict=True):
        at += (noise & mask) + 1
        row[key] = at
    set_clock(session, at)
    return rows[0][key]
