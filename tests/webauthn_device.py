"""A software security key for the tests: ECDSA P-256 credentials, "none" attestation, real signatures.

It answers the options the hub's pages carry exactly as a browser and a FIDO2 key would, and can be
told to lie about the origin, the relying party or its signature counter.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, encode_cbor

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def options_of(page_html: str, kind: str) -> str:
    """The ceremony options a panel page carries for webauthn.js (``kind``: "create" or "get")."""
    found = re.search(rf'data-webauthn-{kind}="([^"]+)"', page_html)
    assert found, f"no data-webauthn-{kind} options on the page"
    return html.unescape(found.group(1))


class SoftKey:
    """One credential on one software authenticator."""

    def __init__(self, rp_id: str = "localhost", origin: str = "http://localhost") -> None:
        self.rp_id, self.origin = rp_id, origin
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0

    def _cose_key(self) -> bytes:
        numbers = self.private.public_key().public_numbers()
        return encode_cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def _credential(self, response: dict[str, Any]) -> str:
        """The PublicKeyCredential JSON the browser hands the page, around an authenticator ``response``."""
        return json.dumps(
            {
                "id": bytes_to_base64url(self.credential_id),
                "rawId": bytes_to_base64url(self.credential_id),
                "type": "public-key",
                "response": response,
                "clientExtensionResults": {},
            }
        )

    def create(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None) -> str:
        """The credential JSON of ``navigator.credentials.create`` for these options."""
        options = json.loads(options_json)
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([FLAG_UP | FLAG_UV | FLAG_AT])
            + self.sign_count.to_bytes(4, "big")
            + bytes(16)  # AAGUID: none
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_key()
        )
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return self._credential(
            {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation),
                "transports": ["usb"],
            }
        )

    def get(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        sign_count: int | None = None,
    ) -> str:
        """The credential JSON of ``navigator.credentials.get``; the counter moves on unless ``sign_count`` is given."""
        options = json.loads(options_json)
        allowed = [base64url_to_bytes(d["id"]) for d in options.get("allowCredentials", [])]
        assert not allowed or self.credential_id in allowed, "the hub did not offer this key"
        if sign_count is None:
            self.sign_count += 1
            sign_count = self.sign_count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([FLAG_UP | FLAG_UV])
            + sign_count.to_bytes(4, "big")
        )
        signature = self.private.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return self._credential(
            {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
            }
        )
