"""Stateless, signed ``next`` tokens.

A token names who asked (partner), where (collection and endpoint), what (the
normalised filters) and how far the client got (the last ``date_added`` it
received). It is HMAC-signed with the hub's secret, so any worker on any host
can continue a page days later; nothing is kept in memory. The sharing rules are
not in the token: every page re-applies the rules in force when it is served.

A token that cannot be used raises ``InvalidToken`` with a short reason; the
backend then serves the request as if no token had been sent (see
``hub.taxii.backend._continuation``), so a client holding a stale token is never
locked out and nothing from the token is used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

_TAG = b"cti-hub next v1:"


class InvalidToken(ValueError):
    """A token the hub cannot use; ``reason`` is one of malformed, signature, expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Position:
    partner: int
    collection: str
    endpoint: str
    filters: dict[str, Any]
    after: int
    issued: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(secret: str, pos: Position) -> str:
    """Return the token for ``pos``."""
    payload = orjson.dumps(
        [pos.partner, pos.collection, pos.endpoint, pos.filters, pos.after, pos.issued], option=orjson.OPT_SORT_KEYS
    )
    mac = hmac.new(secret.encode(), _TAG + payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode(secret: str, token: str, *, now_us: int, ttl_us: int) -> Position:
    """Verify and read a token; raise InvalidToken for anything forged, damaged or expired."""
    if len(token) > 4096 or token.count(".") != 1:
        raise InvalidToken("malformed")
    body, mac = token.split(".")
    try:
        payload, given = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None
    expected = hmac.new(secret.encode(), _TAG + payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(expected, given):
        raise InvalidToken("signature")
    try:
        partner, collection, endpoint, filters, after, issued = orjson.loads(payload)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise InvalidToken("malformed") from None
    shape = (int, str, str, dict, int, int)
    values = (partner, collection, endpoint, filters, after, issued)
    if not all(type(v) is t for v, t in zip(values, shape, strict=True)):
        raise InvalidToken("malformed")
    if now_us - issued > ttl_us:
        raise InvalidToken("expired")
    return Position(partner, collection, endpoint, filters, after, issued)
