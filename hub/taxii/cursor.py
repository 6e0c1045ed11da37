"""Stateless, signed ``next`` tokens.

A token names who asked (partner), where (collection and endpoint), what (the
normalised filters) and how far the client got (the last ``date_added`` it
received). It is HMAC-signed with the hub's secret, so any worker on any host
can continue a page days later; nothing is kept in memory. The sharing rules are
not in the token: every page re-applies the rules in force when it is served.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from hub.errors import BadRequest

_TAG = b"cti-hub next v1:"
_INVALID = "the 'next' token is invalid or has expired; start again without 'next'"


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
    payload = orjson.dumps([pos.partner, pos.collection, pos.endpoint, pos.filters, pos.after, pos.issued],
                           option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(secret.encode(), _TAG + payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode(secret: str, token: str, *, now_us: int, ttl_us: int) -> Position:
    """Verify and read a token; raise BadRequest for anything forged, damaged or expired."""
    if len(token) > 4096 or token.count(".") != 1:
        raise BadRequest(_INVALID)
    body, mac = token.split(".")
    try:
        payload, given = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        raise BadRequest(_INVALID) from None
    expected = hmac.new(secret.encode(), _TAG + payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(expected, given):
        raise BadRequest(_INVALID)
    try:
        partner, collection, endpoint, filters, after, issued = orjson.loads(payload)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise BadRequest(_INVALID) from None
    shape = (int, str, str, dict, int, int)
    values = (partner, collection, endpoint, filters, after, issued)
    if not all(type(v) is t for v, t in zip(values, shape, strict=True)) or now_us - issued > ttl_us:
        raise BadRequest(_INVALID)
    return Position(partner, collection, endpoint, filters, after, issued)
