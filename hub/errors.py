"""The hub's errors: one base class carrying an HTTP status.

    HubError (500)
    ├── ConfigError (500)        bad settings or sharing configuration
    ├── BadRequest (400)         malformed query, filter or request
    ├── Unauthorized (401)       missing or wrong credentials
    ├── Forbidden (403)          authenticated but not allowed
    ├── NotFound (404)           absent, or hidden by the sharing rules
    ├── NotAcceptable (406)      Accept header names nothing the hub serves
    ├── PayloadTooLarge (413)    body above the API root's max_content_length
    ├── UnsupportedMedia (415)   POST body of a type the hub does not take
    ├── Unprocessable (422)      well-formed but unusable content
    └── TooManyRequests (429)    rate limited; carries ``retry_after`` seconds

``hub.taxii`` maps these to TAXII error JSON; the CLI prints the message on one line.
"""

from __future__ import annotations


class HubError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class ConfigError(HubError):
    title = "Configuration error"


class BadRequest(HubError):
    status = 400
    title = "Bad request"


class Unauthorized(HubError):
    status = 401
    title = "Unauthorized"


class Forbidden(HubError):
    status = 403
    title = "Forbidden"


class NotFound(HubError):
    status = 404
    title = "Not found"


class NotAcceptable(HubError):
    status = 406
    title = "Not acceptable"


class PayloadTooLarge(HubError):
    status = 413
    title = "Payload too large"


class UnsupportedMedia(HubError):
    status = 415
    title = "Unsupported media type"


class Unprocessable(HubError):
    status = 422
    title = "Unprocessable content"


class TooManyRequests(HubError):
    status = 429
    title = "Too many requests"
