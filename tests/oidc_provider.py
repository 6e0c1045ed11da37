"""A real OpenID Connect provider on 127.0.0.1 for the single sign-on tests.

Authlib's Flask authorization server with the OpenID Connect code grant and PKCE (required on every
authorization request), an RSA signing key made with joserfc, discovery, JWKS, token and userinfo
endpoints, and a login form; served by werkzeug in a thread. Test knobs:

- ``users``: user name -> (password, claims);
- ``rogue_key``: sign ID tokens with a key that is not in the JWKS (same ``kid``);
- ``userinfo_only``: claim names left out of the ID token, answered by the userinfo endpoint only;
- ``requests``: the query of every authorization request, to check what the client sent.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "cti-hub-panel"
CLIENT_SECRET = "provider-issued-client-secret"  # noqa: S105 - a test value
PASSWORD = "provider password"  # noqa: S105


@dataclass
class User:
    sub: str
    password: str
    claims: dict[str, Any]


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in {"openid", "email", "profile", "groups"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


class PkceAlways(CodeChallenge):
    """PKCE required of confidential clients too (OAuth 2.1): no challenge, no code."""

    def validate_code_challenge(self, grant, redirect_uri):
        if request.args.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with S256 is required")
        return super().validate_code_challenge(grant, redirect_uri)


class OIDCProvider:
    """The provider; ``start()`` serves it, ``stop()`` ends it. ``issuer`` is its URL."""

    def __init__(self, host: str = "127.0.0.1", issuer_host: str | None = None) -> None:
        self.host, self.issuer_host = host, issuer_host or host
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        other = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.other_key = other
        self.rogue_key = False
        self.userinfo_only: set[str] = set()
        self.users: dict[str, User] = {}
        self.requests: list[dict[str, str]] = []
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, tuple[User, str]] = {}
        self.redirect_uris: list[str] = []
        self._server = None
        self.issuer = ""

    def add_user(self, name: str, **claims: Any) -> None:
        self.users[name] = User(sub=f"sub-{name}-{secrets.token_hex(4)}", password=PASSWORD, claims=claims)

    # ------------------------------------------------------------------ serving

    def start(self) -> OIDCProvider:
        app = self._app()
        self._server = make_server(self.host, 0, app, threaded=True)
        self.issuer = f"http://{self.issuer_host}:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _app(self) -> Flask:
        provider = self
        app = Flask("test-oidc-provider")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": 600}

        class Grant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code, req):
                data = req.payload.data
                provider.codes[code] = Code(
                    code=code,
                    client_id=req.client.get_client_id(),
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    user=req.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code, client):
                item = provider.codes.get(code)
                return item if item and item.client_id == client.get_client_id() else None

            def delete_authorization_code(self, authorization_code):
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        class IdTokens(OpenIDCode):
            def exists_nonce(self, nonce, req):
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client):
                return provider.other_key if provider.rogue_key else provider.key

            def get_client_algorithm(self, client):
                return "RS256"

            def get_client_claims(self, client):
                return {"iss": provider.issuer, "aud": [client.get_client_id()]}

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": "test-key"}

            def generate_user_info(self, user, scope):
                claims = {k: v for k, v in user.claims.items() if k not in provider.userinfo_only}
                return UserInfo(sub=user.sub, **claims)

        def query_client(client_id):
            if client_id == CLIENT_ID:
                return Client(CLIENT_ID, CLIENT_SECRET, provider.redirect_uris)
            return None

        def save_token(token, req):
            provider.tokens[token["access_token"]] = (req.user, token.get("scope", ""))

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_grant(Grant, [IdTokens(require_nonce=True), PkceAlways(required=True)])

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=provider.issuer,
                authorization_endpoint=f"{provider.issuer}/authorize",
                token_endpoint=f"{provider.issuer}/token",
                userinfo_endpoint=f"{provider.issuer}/userinfo",
                jwks_uri=f"{provider.issuer}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                token_endpoint_auth_methods_supported=["client_secret_basic"],
                code_challenge_methods_supported=["S256"],
                scopes_supported=["openid", "email", "profile", "groups"],
            )

        @app.get("/favicon.ico")
        def favicon():
            return Response(status=204)

        @app.get("/jwks")
        def jwks():
            return jsonify(keys=[provider.key.as_dict(private=False)])

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize():
            if request.method == "GET":
                provider.requests.append(dict(request.args))
                try:
                    server.get_consent_grant(end_user=None)
                except Exception as exc:  # the provider's own error page, as a real one shows
                    return Response(f"<h1>Invalid request</h1><p>{html.escape(str(exc))}</p>", 400)
                return _login_form("")
            user = provider.users.get(request.form.get("username", ""))
            if user is None or not secrets.compare_digest(request.form.get("password", ""), user.password):
                return _login_form("Wrong user name or password.")
            grant = server.get_consent_grant(end_user=user)
            return server.create_authorization_response(grant=grant, grant_user=user)

        @app.post("/token")
        def token():
            return server.create_token_response()

        @app.get("/userinfo")
        def userinfo():
            found = provider.tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
            if found is None:
                return jsonify(error="invalid_token"), 401
            user, _ = found
            return jsonify(sub=user.sub, **user.claims)

        return app


def _login_form(error: str) -> Response:
    body = (
        "<!doctype html><title>Test provider</title><h1>Test identity provider</h1>"
        + (f'<p class="error">{html.escape(error)}</p>' if error else "")
        + f'<form method="post" action="{html.escape(request.full_path)}">'
        '<label>User <input id="username" name="username"></label>'
        '<label>Password <input id="password" name="password" type="password"></label>'
        '<button type="submit">Sign in</button></form>'
    )
    return Response(body, 401 if error else 200, mimetype="text/html")


# --------------------------------------------------------------------- the hub's side

HUB_URL = "http://hub.example"  # the public_url of the test-client hub; its callback is registered here


def hub_settings(provider: OIDCProvider, public_url: str = HUB_URL, **overrides: Any) -> dict[str, Any]:
    """The hub's SSO settings for this provider (the callback registered with it)."""
    provider.redirect_uris.append(f"{public_url}/admin/sso/callback")
    return {
        "public_url": public_url,
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_role_claim": "groups",
        "oidc_role_map": "cti-admins=admin, cti-auditors=auditor",
        "oidc_provider_name": "Test IdP",
        **overrides,
    }


def sign_in_at_provider(authorize_url: str, user: str, password: str = PASSWORD) -> str:
    """Log in on the provider's form; return the query string it sends the browser back with."""
    import requests

    r = requests.post(authorize_url, data={"username": user, "password": password}, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert "/admin/sso/callback?" in location, location
    return location.split("?", 1)[1]
