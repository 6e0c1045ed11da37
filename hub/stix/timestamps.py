"""STIX and TAXII timestamps: parsing into microseconds since the epoch, and formatting."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

# The regexes decide the accepted syntax; datetime.fromisoformat (C, fast) then checks the
# calendar (day of month, leap years, hours < 24, no leap second) and does the arithmetic.
_TS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
_FILTER_TS_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+\- ][0-9]{2}:[0-9]{2})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_EPOCH_FALLBACK = "1970-01-01T00:00:00.000Z"


def _iso_micros(text: str, iso: str) -> int:
    """Microseconds since the epoch of a syntactically checked ISO 8601 string."""
    try:
        # Fractions beyond microseconds are truncated, as fromisoformat does.
        return (datetime.fromisoformat(iso) - _EPOCH) // _ONE_US
    except ValueError:
        raise ValueError(f"{text!r} is not a valid timestamp: date or time of day out of range") from None


@functools.lru_cache(maxsize=8192)
def _parse_stix_timestamp(text: str) -> int:
    """Parse a string timestamp; cached because validate() reads most timestamps twice."""
    if _TS_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.fraction]Z)")
    return _iso_micros(text, text)


def parse_timestamp(text: str) -> int:
    """Parse a STIX timestamp (RFC 3339, 'Z', 0-9 fraction digits) into microseconds since the epoch."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a STIX timestamp (a string YYYY-MM-DDTHH:MM:SS[.fraction]Z)")
    return _parse_stix_timestamp(text)


def parse_filter_timestamp(text: str) -> int:
    """Parse a TAXII query timestamp leniently ('Z' or a UTC offset, URL-decoded '+') into microseconds."""
    value = text.strip() if isinstance(text, str) else ""
    if _FILTER_TS_RE.fullmatch(value) is None:
        raise ValueError(f"{text!r} is not a valid timestamp (YYYY-MM-DDTHH:MM:SS[.fraction] and Z, +hh:mm or -hh:mm)")
    # A space is what URL decoding leaves of '+'.
    iso = value[:10] + "T" + value[11:].upper()
    if iso[-6] == " ":
        iso = iso[:-6] + "+" + iso[-5:]
    return _iso_micros(text, iso)


def format_timestamp(us: int) -> str:
    """Format microseconds since the epoch as 'YYYY-MM-DDTHH:MM:SS.ffffffZ'."""
    try:
        moment = _EPOCH + timedelta(microseconds=us)
    except OverflowError:
        raise ValueError(f"timestamp {us} us is outside years 0001-9999") from None
    # strftime('%Y') does not zero-pad years below 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def object_version(obj: dict) -> str:
    """Return the version timestamp of an object: 'modified', else 'created', else the epoch."""
    return obj.get("modified") or obj.get("created") or _EPOCH_FALLBACK
