"""OpenID Connect single sign-on for the panel: its settings, the provider's protocol, SSO identities.

The panel's routes (``hub.admin.sso``) run the authorization-code flow with PKCE; this module holds
what does not need Flask:

- ``load``: the ``oidc_*`` settings, checked once at start-up (``None`` when SSO is off);
- ``Provider``: discovery, the authorization URL, the code exchange and the ID token's verification
  (signature against the issuer's JWKS, ``iss``, ``aud``, ``azp``, ``exp``, ``iat``, ``nonce``, ``at_hash``);
- ``identity``: the role a user's claims map to (none: refused);
- ``session_user``: whether an SSO panel session still stands, on each request.

An SSO user has no account row: it exists as a session identity whose role comes from its claims,
and the audit trail names it by issuer and subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy.orm import Session

from hub.errors import BadRequest, ConfigError, Forbidden, HubError
from hub.store import auditlog

ROLES = ("admin", "auditor")  # the panel's roles, most privileged first: claims mapping to both get the first
CALLBACK_PATH = "/admin/sso/callback"
TIMEOUT_SECONDS = 10
LEEWAY_SECONDS = 60  # clock skew allowed between the hub and the provider
# ID tokens signed with the client secret (HS256) or unsigned ("none") are never accepted.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class ProviderError(HubError):
    """The provider could not be reached or answered something unusable."""

    status = 502
    title = "Sign-in provider unavailable"


class SignInRefused(Forbidden):
    """The provider signed the user in, but this panel does not let them in."""

    title = "Single sign-on refused"


class FlowError(BadRequest):
    """The answer does not belong to the sign-in this browser started, or fails verification."""

    title = "Single sign-on failed"


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    role_claim: str
    role_map: Mapping[str, str]
    provider_name: str
    redirect_uri: str


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str
    name: str  # the panel and audit name: "sso:" + email, username or subject
    role: str | None
    matched: tuple[str, ...]  # the claim values that gave the role
    values: tuple[str, ...]  # every value of the role claim, for the audit of a refusal


# --------------------------------------------------------------------- settings


def load(settings: Mapping[str, Any]) -> OidcSettings | None:
    """Return the SSO settings, or None when ``oidc_issuer`` is empty; ConfigError names what is wrong."""
    issuer = settings.get("oidc_issuer", "").strip().rstrip("/")
    if not issuer:
        return None
    url = urlsplit(issuer)
    loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
    if url.scheme != "https" and not (url.scheme == "http" and loopback) or not url.netloc or url.query or url.fragment:
        # Over plain HTTP anyone on the path could hand the hub their own signing keys.
        raise ConfigError(
            "setting 'oidc_issuer' must be an https URL without query or fragment (http only on a loopback "
            f"address), got {issuer!r}"
        )
    client_id = settings.get("oidc_client_id", "").strip()
    if not client_id:
        raise ConfigError("setting 'oidc_client_id' is required when 'oidc_issuer' is set")
    public_url = settings.get("public_url", "").strip().rstrip("/")
    if not public_url:
        raise ConfigError(
            "setting 'public_url' is required when 'oidc_issuer' is set: the provider returns the browser to "
            f"<public_url>{CALLBACK_PATH}, which must be registered with it exactly"
        )
    scopes = tuple(dict.fromkeys(["openid", *settings.get("oidc_scopes", "").replace(",", " ").split()]))
    role_claim = settings.get("oidc_role_claim", "").strip()
    if not role_claim:
        raise ConfigError("setting 'oidc_role_claim' is required when 'oidc_issuer' is set")
    role_map = parse_role_map(settings.get("oidc_role_map", ""))
    return OidcSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=_client_secret(settings),
        scopes=scopes,
        role_claim=role_claim,
        role_map=role_map,
        provider_name=settings.get("oidc_provider_name", "").strip() or url.hostname or issuer,
        redirect_uri=public_url + CALLBACK_PATH,
    )


def _client_secret(settings: Mapping[str, Any]) -> str:
    inline, path = settings.get("oidc_client_secret", ""), settings.get("oidc_client_secret_file", "")
    if inline and path:
        raise ConfigError(
            "set one of 'oidc_client_secret' (or CTI_HUB_OIDC_CLIENT_SECRET) and 'oidc_client_secret_file'"
        )
    if path:
        try:
            inline = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read 'oidc_client_secret_file' {path}: {exc.strerror}") from None
    if not inline:
        raise ConfigError(
            "a client secret is required when 'oidc_issuer' is set: CTI_HUB_OIDC_CLIENT_SECRET, "
            "'oidc_client_secret_file' or 'oidc_client_secret'"
        )
    return inline


def parse_role_map(text: str) -> dict[str, str]:
    """Parse ``value=role`` entries separated by commas or new lines (a value may itself contain ``=``)."""
    out: dict[str, str] = {}
    for entry in re.split(r"[,\n]", text):
        if not entry.strip():
            continue
        value, sep, role = entry.rpartition("=")
        value, role = value.strip(), role.strip()
        if not sep or not value:
            raise ConfigError(f"setting 'oidc_role_map': {entry.strip()!r} is not of the form claim-value=role")
        if role not in ROLES:
            raise ConfigError(
                f"setting 'oidc_role_map': unknown role {role!r} for {value!r}; roles: {', '.join(ROLES)}"
            )
        if out.get(value, role) != role:
            raise ConfigError(f"setting 'oidc_role_map': {value!r} is mapped to both {out[value]!r} and {role!r}")
        out[value] = role
    if not out:
        raise ConfigError("setting 'oidc_role_map' maps no claim value to a role: nobody could sign in")
    return out


# --------------------------------------------------------------------- claims and roles


def claim_values(claims: Mapping[str, Any], name: str) -> list[str]:
    """The claim's values as strings: a top-level claim, else a dotted path (``realm_access.roles``)."""
    value: Any = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if value is None or isinstance(value, Mapping):
        return []
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, str | int | bool)]


def map_role(oidc: OidcSettings, values: list[str] | tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """Return the most privileged role the values map to (None: no role) and the values that gave it."""
    for role in ROLES:
        matched = tuple(v for v in values if oidc.role_map.get(v) == role)
        if matched:
            return role, matched
    return None, ()


def _printable(text: Any, limit: int) -> str:
    return "".join(ch for ch in str(text) if ch.isprintable())[:limit]


def identity(oidc: OidcSettings, claims: Mapping[str, Any]) -> Identity:
    """The panel identity that verified claims give: its name, and its role (None: refused)."""
    values = claim_values(claims, oidc.role_claim)
    role, matched = map_role(oidc, values)
    subject = _printable(claims.get("sub", ""), 255)
    email = _printable(claims.get("email", ""), 254) if isinstance(claims.get("email"), str) else ""
    label = email or _printable(claims.get("preferred_username") or "", 80) or subject
    return Identity(
        issuer=oidc.issuer,
        subject=subject,
        email=email,
        name=f"sso:{label}"[:64],
        role=role,
        matched=matched,
        values=tuple(_printable(v, 100) for v in values[:20]),
    )


def session_user(
    session: Session, oidc: OidcSettings | None, user: Mapping[str, Any], logged_in_us: int
) -> dict[str, Any] | None:
    """Return an SSO session's user as it is now, or None when the session no longer stands.

    It ends when SSO is turned off or moved to another issuer, when the role map no longer maps the
    claim values that gave the role (a changed mapping takes effect at once, as a changed role does
    for a local account), or when the identity logged out after this session began.
    """
    sso = user.get("sso") or {}
    if oidc is None or sso.get("iss") != oidc.issuer:
        return None
    role, _ = map_role(oidc, tuple(sso.get("via") or ()))
    if role is None:
        return None
    if auditlog.audit_events(session, action="admin.logout", actor=user["name"], since_us=logged_in_us, limit=1):
        return None
    return {**user, "role": role}


# --------------------------------------------------------------------- the provider


class Provider:
    """The issuer's endpoints, from its discovery document; one instance per sign-in step."""

    def __init__(self, oidc: OidcSettings) -> None:
        self.oidc = oidc
        self.metadata = self._discover()

    def _get(self, url: str, what: str, **kwargs: Any) -> Any:
        try:
            response = requests.get(url, timeout=TIMEOUT_SECONDS, **kwargs)
            response.raise_for_status()
            return response.json()
        except requests.RequestException as exc:
            raise ProviderError(f"The sign-in provider could not be reached for its {what} ({_reason(exc)}).") from None
        except ValueError:
            raise ProviderError(f"The sign-in provider's {what} at {url} is not JSON.") from None

    def _discover(self) -> dict[str, Any]:
        url = self.oidc.issuer + "/.well-known/openid-configuration"
        metadata = self._get(url, "discovery document")
        if not isinstance(metadata, dict):
            raise ProviderError(f"The sign-in provider's discovery document at {url} is not a JSON object.")
        if str(metadata.get("issuer", "")).rstrip("/") != self.oidc.issuer:
            raise ProviderError(
                f"The discovery document at {url} names the issuer {metadata.get('issuer')!r}, "
                f"not the configured {self.oidc.issuer!r}."
            )
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not metadata.get(k)]
        if missing:
            raise ProviderError(f"The discovery document at {url} has no {', '.join(missing)}.")
        return metadata

    def _client(self, **kwargs: Any) -> OAuth2Session:
        methods = self.metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return OAuth2Session(
            self.oidc.client_id,
            self.oidc.client_secret,
            token_endpoint_auth_method=method,
            scope=" ".join(self.oidc.scopes),
            redirect_uri=self.oidc.redirect_uri,
            code_challenge_method="S256",
            default_timeout=TIMEOUT_SECONDS,
            **kwargs,
        )

    def authorization_url(self, state: str, nonce: str, code_verifier: str) -> str:
        """The URL that sends the browser to the provider's sign-in page."""
        with self._client() as client:
            url, _ = client.create_authorization_url(
                self.metadata["authorization_endpoint"], state=state, nonce=nonce, code_verifier=code_verifier
            )
        return url

    def claims(self, code: str, code_verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange the code for tokens; return the verified ID token's claims (plus the role claim from
        the userinfo endpoint when the ID token lacks it)."""
        with self._client() as client:
            try:
                token = client.fetch_token(self.metadata["token_endpoint"], code=code, code_verifier=code_verifier)
            except OAuthError as exc:
                raise FlowError(
                    f"The provider did not accept the sign-in code ({_reason(exc)}): start again."
                ) from None
            except requests.RequestException as exc:
                raise ProviderError(
                    f"The sign-in provider could not be reached for the token ({_reason(exc)})."
                ) from None
            except ValueError:
                raise ProviderError("The sign-in provider's token response is not JSON.") from None
        if not token.get("id_token"):
            raise FlowError("The provider's answer carries no ID token: is the 'openid' scope allowed for this client?")
        claims = self._verify(token["id_token"], nonce, token.get("access_token"))
        if self.oidc.role_claim not in claims and self.metadata.get("userinfo_endpoint") and token.get("access_token"):
            claims = self._with_userinfo(claims, token["access_token"])
        return claims

    def _verify(self, id_token: str, nonce: str, access_token: str | None) -> dict[str, Any]:
        keys = self._get(self.metadata["jwks_uri"], "signing keys (JWKS)")
        offered = self.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in SIGNING_ALGORITHMS]
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.oidc.client_id}
        if access_token:
            params["access_token"] = access_token
        try:
            decoded = jwt.decode(
                id_token, KeySet.import_key_set(keys), registry=JWSRegistry(algorithms=algorithms or ["RS256"])
            )
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {"iss": {"essential": True, "values": [self.oidc.issuer]}, "aud": {"values": [self.oidc.client_id]}},
                params,
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise FlowError(f"The provider's ID token failed verification ({_reason(exc)}): start again.") from None
        return dict(claims)

    def _with_userinfo(self, claims: dict[str, Any], access_token: str) -> dict[str, Any]:
        info = self._get(
            self.metadata["userinfo_endpoint"], "user information", headers={"Authorization": f"Bearer {access_token}"}
        )
        if not isinstance(info, dict) or info.get("sub") != claims.get("sub"):
            raise FlowError("The provider's user information is about another subject than its ID token.")
        return {**claims, self.oidc.role_claim: info.get(self.oidc.role_claim)}


def _reason(exc: Exception) -> str:
    """A short, credential-free reason for a failure, for the page and the audit."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {TIMEOUT_SECONDS} seconds"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or host unreachable"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, OAuthError):
        return _printable(exc.error or "error", 60) + (
            f": {_printable(exc.description, 200)}" if getattr(exc, "description", None) else ""
        )
    if isinstance(exc, JoseError):
        return _printable(exc.description or exc.error, 200)
    return _printable(type(exc).__name__, 60)
