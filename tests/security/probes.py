"""Probes the attack tests share: requests a partner may make, and how a hidden object must answer them.

Every response about a hidden object must be byte-for-byte the response about an id that was never
stored: same status, same header names and values (``Date`` and ``X-Request-ID`` aside), same body once
the id is swapped.
"""

from __future__ import annotations

import base64
import uuid

from tests import factories as f


def absent_like(stix_id: str) -> str:
    """An id of the same type and length that no one published."""
    return f"{stix_id.split('--')[0]}--{uuid.uuid4()}"


# Per-request values that carry nothing about the object: the clock and the request's own id.
PER_REQUEST = {"date", "x-request-id"}


def headers_of(response) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((k, v) for k, v in response.headers.items() if k.lower() not in PER_REQUEST)


def assert_indistinguishable(hidden, absent, hidden_id: str, absent_id: str) -> None:  # type: ignore[no-untyped-def]
    assert hidden.status_code == absent.status_code
    assert headers_of(hidden) == [(k, v.replace(absent_id, hidden_id)) for k, v in headers_of(absent)]
    assert hidden.get_data() == absent.get_data().replace(absent_id.encode(), hidden_id.encode())


ENDPOINTS = [
    ("object", lambda w, i: (w.url("shared", f"objects/{i}/"), {})),
    ("versions", lambda w, i: (w.url("shared", f"objects/{i}/versions/"), {})),
    ("object all versions", lambda w, i: (w.url("shared", f"objects/{i}/"), {"match[version]": "all"})),
    ("object at version", lambda w, i: (w.url("shared", f"objects/{i}/"), {"match[version]": f.CLOCK})),
    ("objects match[id]", lambda w, i: (w.url("shared"), {"match[id]": i})),
    ("objects match[id] all", lambda w, i: (w.url("shared"), {"match[id]": i, "match[version]": "all"})),
    ("objects match[id]+type", lambda w, i: (w.url("shared"), {"match[id]": i, "match[type]": "indicator"})),
    ("manifest match[id]", lambda w, i: (w.url("shared", "manifest/"), {"match[id]": i})),
    (
        "manifest match[id] first",
        lambda w, i: (w.url("shared", "manifest/"), {"match[id]": i, "match[version]": "first"}),
    ),
]


def basic(user: bytes | str, password: bytes | str) -> dict:
    raw = (
        (user.encode() if isinstance(user, str) else user)
        + b":"
        + (password.encode() if isinstance(password, str) else password)
    )
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}
