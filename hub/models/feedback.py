"""The tables of the feedback loop: sightings and opinions about partners' objects, and false-positive flags."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import expression

from hub.models.base import Base


class Feedback(Base):
    """One stored version of a sighting or opinion in a feedback collection, and the object it is about.

    ``target_originator_id`` is the partner that receives it (the originator of ``target_id`` as the
    reporter saw it); ``kind`` is ``sighting``, ``false_positive`` (an opinion of disagree or
    strongly-disagree), ``opinion`` (any other opinion) or ``flag`` (the hub's own notice to the originator).
    History, like the ledger: the version row it names may since have been deleted or archived.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_target", "target_id", "target_originator_id"),
        Index("ix_feedback_added", "added_us"),
    )
    version_pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(Integer)
    stix_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(100))
    target_originator_id: Mapped[int] = mapped_column(Integer)
    reporter_id: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    first_seen_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_seen_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=expression.false())
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=expression.false())
    added_us: Mapped[int] = mapped_column(BigInteger)


class FalsePositiveFlag(Base):
    """An indicator that reached its collection's false-positive threshold; ``cleared_us`` once it fell below."""

    __tablename__ = "false_positive_flags"
    __table_args__ = (Index("ix_fp_flags_object", "collection_id", "stix_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(Integer)
    stix_id: Mapped[str] = mapped_column(String(100))
    originator_id: Mapped[int] = mapped_column(Integer)
    reporters: Mapped[int] = mapped_column(Integer)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=expression.false())
    flagged_us: Mapped[int] = mapped_column(BigInteger)
    cleared_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
