"""API keys and request authentication.

A key is 256 random bits, shown once and stored as HMAC-SHA-256 under the hub's
secret: checking it costs one hash and one indexed lookup (microseconds), unlike a
password hash, and a stolen database alone does not reveal or verify keys.

Accepted forms: HTTP Basic with user = partner slug or key id and password = key
(what Microsoft Sentinel sends), ``Authorization: Bearer <key>`` and
``Authorization: Token <key>`` (taxii2-client, OpenCTI, Elastic).

A key may also be bound to a client certificate (its SHA-256 fingerprint or its subject): it then
works only over a connection that presented that certificate, verified by whoever terminated TLS:
gunicorn itself (``cti-hub serve --ca-certs ... --cert-reqs 2``), or a reverse proxy that forwards
the verified certificate in the ``client_cert_header`` setting, believed only from the addresses in
``client_cert_proxies``. A missing or different certificate is the same 401 as a wrong key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import ssl
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy.orm import Session

from hub.errors import TooManyRequests
from hub.store import auditlog, clock, logins

SECRET_PREFIX = "chub_"  # noqa: S105 - a public prefix that makes leaked keys easy to spot
TOUCH_EVERY_US = 60 * 1_000_000


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a partner acting through one API key."""

    partner_pk: int
    slug: str
    key_pk: int
    key_id: str
    read_only: bool
    last_used_us: int | None = None
    # The sharing-rules version read together with the key: the request's snapshot is checked against it.
    rules_version: int | None = None
    created_us: int = 0


@dataclass(frozen=True)
class ClientCertificate:
    """The client certificate a request came with: what a key can be bound to."""

    sha256: str  # lower-case hex of the DER encoding
    subject: str  # RFC 4514, e.g. "CN=krcert-siem,O=KrCERT"
    not_after_us: int

    @classmethod
    def from_der(cls, der: bytes) -> ClientCertificate:
        cert = x509.load_der_x509_certificate(der)
        return cls(
            cert.fingerprint(hashes.SHA256()).hex(),
            cert.subject.rfc4514_string(),
            int(cert.not_valid_after_utc.timestamp() * 1_000_000),
        )

    @classmethod
    def from_pem(cls, pem: str) -> ClientCertificate:
        return cls.from_der(ssl.PEM_cert_to_DER_cert(pem.strip()))


def normalise_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as typed (``AB:CD:...`` or hex); raise ValueError if it is not one."""
    value = text.replace(":", "").strip().lower()
    if len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise ValueError(f"not a SHA-256 fingerprint: {text!r} (64 hex digits, colons allowed)")
    return value


def request_certificate(environ: dict[str, Any], settings: dict[str, Any], peer: str) -> ClientCertificate | None:
    """The verified client certificate of a request, or None.

    In order: a configured proxy header, believed only from ``client_cert_proxies`` (``peer`` is the
    address of the connection, not one a proxy header claims); the PEM a WSGI server exports as
    ``SSL_CLIENT_CERT``; the peer certificate of gunicorn's TLS socket. A certificate that cannot be
    read counts as none.
    """
    try:
        header = settings.get("client_cert_header", "")
        if header:
            value = environ.get("HTTP_" + header.upper().replace("-", "_"), "")
            if value and _source_allowed(settings.get("client_cert_proxies", ""), peer):
                return ClientCertificate.from_pem(urllib.parse.unquote(value).replace("\t", "\n"))
        if environ.get("SSL_CLIENT_CERT"):
            return ClientCertificate.from_pem(environ["SSL_CLIENT_CERT"])
        sock = environ.get("gunicorn.socket")
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        return ClientCertificate.from_der(der) if der else None
    except (ValueError, TypeError):
        return None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "k" + secrets.token_hex(6)


def hash_secret(pepper: str, secret: str) -> str:
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def parse_cidrs(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parse a comma-separated CIDR list; raise ValueError naming a bad entry."""
    out = []
    for entry in (x.strip() for x in text.split(",")):
        if entry:
            try:
                out.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"not a CIDR network: {entry!r}") from None
    return out


def credentials(header: str) -> tuple[str, str] | None:
    """Split an Authorization header into (user or "", secret); None when unusable."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() in ("bearer", "token") and value:
        return "", value
    if scheme.lower() == "basic" and value:
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep and password else None
    return None


class _Hub(Protocol):
    """What authentication needs of the running hub (``hub.runtime.Hub``)."""

    pepper: str
    settings: dict[str, Any]

    def session(self) -> AbstractContextManager[Session]: ...


def authenticate(
    hub: _Hub,
    read: Session,
    header: str,
    source: str,
    spend: Callable[[str], None],
    certificate: ClientCertificate | None = None,
) -> Principal | None:
    """The one way every API request is authenticated: the caller's principal, or None for a 401.

    ``read`` is the request's read session. A client address that failed too often gets
    TooManyRequests even with a good key; a failure is counted and audited; ``spend`` charges the
    key's request budget (raising TooManyRequests past it); the key's last use is written at most
    once a minute.
    """
    settings = hub.settings
    window = settings["login_failure_window_seconds"]
    found = identify(read, hub.pepper, header, source, certificate)
    if not isinstance(found, Principal):
        check_rate(read, source, failure_limit=settings["login_failure_limit"], window_seconds=window)
    if isinstance(found, str):
        with hub.session() as session:
            record_failure(session, header, source, found, window_seconds=window)
        return None
    if found is None:
        return None
    spend(found.key_id)
    if needs_touch(found):
        with hub.session() as session:
            logins.touch_key(session, found.key_pk, clock.now_us())
    return found


def identify(
    session: Session, pepper: str, header: str, source: str, certificate: ClientCertificate | None = None
) -> Principal | str | None:
    """Read-only: the caller behind ``header``, a failure reason, or None when no credentials were sent."""
    creds = credentials(header) if header else None
    if creds is None:
        return "no credentials" if header else None
    return _check(session, pepper, creds, source, certificate)


def check_rate(session: Session, source: str, *, failure_limit: int, window_seconds: int) -> None:
    """Raise TooManyRequests when ``source`` failed too often in the current window."""
    failures, retry = logins.login_failures(session, source, window_seconds * 1_000_000)
    if failures >= failure_limit:
        raise TooManyRequests(
            f"too many failed logins from this address; retry in {retry} s", headers={"Retry-After": str(retry)}
        )


def record_failure(session: Session, header: str, source: str, reason: str, *, window_seconds: int) -> None:
    """Count and audit a failed login (a request without credentials is just a 401, not a failure)."""
    creds = credentials(header)
    # The user name is attacker-controlled: keep it printable so it cannot forge or break audit lines.
    user = "".join(ch if ch.isprintable() else "?" for ch in creds[0][:64]) if creds and creds[0] else "-"
    count = logins.record_login_failure(session, source, window_seconds * 1_000_000)
    auditlog.audit(session, user, "login.failed", detail={"reason": reason, "count": count}, source=source)


def needs_touch(principal: Principal) -> bool:
    """Tell whether the key's last-use time is stale enough to write (at most once a minute)."""
    return principal.last_used_us is None or clock.now_us() - principal.last_used_us > TOUCH_EVERY_US


def _check(
    session: Session, pepper: str, creds: tuple[str, str], source: str, certificate: ClientCertificate | None
) -> Principal | str:
    user, secret = creds
    key = logins.find_key(session, hash_secret(pepper, secret))
    if key is None:
        return "unknown key"
    now = clock.now_us()
    if user and user not in (key.slug, key.key_id):
        return "user does not match key"
    if key.revoked_us is not None:
        return "key revoked"
    if key.expires_us is not None and key.expires_us <= now:
        return "key expired"
    if not key.active:
        return "partner suspended"
    if key.cidrs and not _source_allowed(key.cidrs, source):
        return "source address not allowed for this key"
    if (key.cert_sha256 or key.cert_subject) and not _certificate_matches(key, certificate, now):
        return "client certificate does not match the key"
    return Principal(
        key.partner_id,
        key.slug,
        key.id,
        key.key_id,
        key.read_only,
        key.last_used_us,
        key.rules_version,
        key.created_us or 0,
    )


def certificate_of(environ: dict[str, Any], settings: dict[str, Any]) -> ClientCertificate | None:
    """``request_certificate`` for a WSGI request: the peer is the connection's own address, before ProxyFix."""
    original = environ.get("werkzeug.proxy_fix.orig") or {}
    return request_certificate(environ, settings, original.get("REMOTE_ADDR") or environ.get("REMOTE_ADDR") or "")


def _certificate_matches(key: Any, certificate: ClientCertificate | None, now_us: int) -> bool:
    if certificate is None or certificate.not_after_us <= now_us:
        return False
    if key.cert_sha256 and not hmac.compare_digest(key.cert_sha256, certificate.sha256):
        return False
    return not key.cert_subject or key.cert_subject == certificate.subject


def _source_allowed(cidrs: str, source: str) -> bool:
    if not cidrs:
        return False
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    return any(address in network for network in parse_cidrs(cidrs))
