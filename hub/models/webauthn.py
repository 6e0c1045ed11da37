"""The tables of security keys and passkeys (WebAuthn), the panel's other second factor beside TOTP."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.models.base import Base


class AdminWebauthnCredential(Base):
    """A security key (or passkey) of a panel account: its credential id, COSE public key and signature counter.

    ``sign_count`` is the newest counter an assertion carried; an assertion whose counter is not above it
    (unless the key counts nothing, always 0) is refused as a possible clone of the key.
    """

    __tablename__ = "admin_webauthn_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_us: Mapped[int] = mapped_column(BigInteger, default=0)
    last_used_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AdminWebauthnChallenge(Base):
    """A challenge handed to the browser for one enrolment or one login, good once and until ``expires_us``.

    Kept in the database rather than the session cookie, so that a challenge is spent on every worker and
    host at once: ``challenge_hash`` is the SHA-256 of the challenge, hex.
    """

    __tablename__ = "admin_webauthn_challenges"
    challenge_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    expires_us: Mapped[int] = mapped_column(BigInteger)
