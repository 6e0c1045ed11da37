"""The declarative base of the hub's tables and the list-column helper every table module uses."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


def split_list(text: str) -> list[str]:
    """The items of a comma-separated list column (partners, groups, countries, types)."""
    return [x for x in text.split(",") if x]


class Base(DeclarativeBase):
    pass
