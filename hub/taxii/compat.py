"""Fixes for medallion 3.0.0's departures from TAXII 2.1 and from real clients, applied at the edge.

medallion's views stay untouched; this module normalises each TAXII request
before they run and shapes every error after. Each fix names the checklist item
(``../shared/spec/taxii21-checklist.md``) it answers:

- A-01, T-HDR-02: any Accept naming ``application/taxii+json`` (bare, with
  ``version=2.1``, spaces, ``charset``, q-values), ``application/stix+json`` or
  ``*/*`` is served; the header is rewritten to the one form medallion knows.
  Anything else gets 406, ``version=2.0`` included.
- A-01, T-HDR-05: POST bodies typed ``application/taxii+json`` with or without
  ``version=2.1`` / ``charset=utf-8`` are taken; anything else gets 415.
- HEAD on any TAXII GET endpoint is answered as GET without a body (medallion's views
  answer only GET and POST, and gave a 500).
- POST: the caller is authenticated before the body is looked at, so an anonymous client
  gets the same 401 whatever API root it names and whatever size it announces (a 413 for
  a real root only would tell it which roots exist), and the hub reads no anonymous body.
- A-12: chunked uploads (no Content-Length) are read, bounded by the API root's
  ``max_content_length`` (413 beyond it), and given a Content-Length.
- T-FLT-06: a query parameter given twice is a 400, not silently the first value.
- A-11, T-AUTH-03: 401 (and every other error, 404/405 from routing, bad JSON,
  500s) is TAXII error JSON with the TAXII Content-Type; 401 keeps its
  ``WWW-Authenticate`` challenge. A 500 never echoes exception text.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Request, Response, current_app, request
from flask.json.provider import JSONProvider
from medallion import auth as medallion_auth
from medallion.exceptions import MedallionError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from hub.errors import (
    BadRequest,
    HubError,
    NotAcceptable,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMedia,
)

TAXII_MEDIA = "application/taxii+json;version=2.1"
TAXII_BLUEPRINTS = {"collections", "discovery", "manifest", "objects"}
REALM = 'Basic realm="cti-hub", charset="UTF-8"'
log = logging.getLogger("hub.taxii")


class StoredPage(dict[str, Any]):
    """A TAXII envelope whose ``objects`` is the page's stored JSON as one ``orjson.Fragment``.

    The provider writes it as bytes: the stored objects are copied once into the body, never parsed,
    never turned into a ``str`` and encoded again.
    """


class OrjsonProvider(JSONProvider):
    """Flask JSON through orjson; a ``StoredPage`` comes out as the response body's bytes."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        body = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
        if isinstance(obj, StoredPage):
            # Only medallion's object views dump a StoredPage, straight into Response(response=...), which
            # takes bytes as they are; decoding a page to str only for werkzeug to encode it back costs a
            # copy of the whole page each way. Every other caller (templates, jsonify) still gets a str.
            return body  # type: ignore[return-value]
        return body.decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


class HubRequest(Request):
    """Requests whose JSON errors are TAXII errors instead of an HTML 400."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        raise Unprocessable(f"the request body is not valid JSON: {e}")


def _media_ranges(header: str) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        params = {}
        for p in pieces[1:]:
            key, _, value = p.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        out.append((pieces[0].lower(), params))
    return out


def _acceptable(header: str) -> bool:
    for media, params in _media_ranges(header):
        if params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media in ("application/taxii+json", "application/stix+json") and params.get("version", "2.1") == "2.1":
            return True
        if media in ("*/*", "application/*"):
            return True
    return False


def normalise_request(authenticate: Callable[[], object | None]) -> Response | None:
    """Bring a TAXII request into the shape medallion's views expect, or refuse it clearly.

    ``authenticate`` returns the caller's principal or None; it runs before a POST body is examined.
    """
    if request.blueprint not in TAXII_BLUEPRINTS:
        return None
    if request.method == "HEAD":
        request.method = "GET"  # the views then answer as GET; the WSGI layer still sends no body for HEAD
    accept = request.headers.get("Accept", "").strip()
    if accept and not _acceptable(accept):
        raise NotAcceptable(f"cannot answer Accept: {accept[:200]!r}; this server speaks {TAXII_MEDIA}")
    request.environ["HTTP_ACCEPT"] = TAXII_MEDIA
    for key in request.args:
        if len(request.args.getlist(key)) > 1:
            raise BadRequest(f"query parameter {key!r} may appear only once")
    if request.method == "POST":
        if authenticate() is None:
            return _on_auth_error(401)
        _normalise_body()
    return None


def _normalise_body() -> None:
    media, params = (_media_ranges(request.headers.get("Content-Type", "")) or [("", {})])[0]
    if (
        media != "application/taxii+json"
        or params.get("version", "2.1") != "2.1"
        or params.get("charset", "utf-8").lower() not in ("utf-8", "utf8")
    ):
        raise UnsupportedMedia(f"POST bodies must be {TAXII_MEDIA}; got {request.headers.get('Content-Type')!r}")
    request.environ["CONTENT_TYPE"] = TAXII_MEDIA
    limit = _root_limit()
    length = request.content_length
    if length is not None and limit is not None and length > limit:
        raise PayloadTooLarge(f"the body is {length} bytes; this API root takes at most {limit}")
    if length is None:
        request.environ["wsgi.input_terminated"] = True
        data = request.stream.read((limit or 10 * 1024 * 1024) + 1)
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(f"the body exceeds this API root's max_content_length of {limit} bytes")
        request._cached_data = data  # medallion reads the body through get_json(); hand it the bytes read
        request.environ["CONTENT_LENGTH"] = str(len(data))


def _root_limit() -> int | None:
    root = (request.view_args or {}).get("api_root")
    backend = current_app.medallion_backend  # type: ignore[attr-defined]
    info = backend.get_api_root_information(root) if root else None
    return info["max_content_length"] if info else None


def error_response(status: int, title: str, description: str, headers: dict[str, str] | None = None) -> Response:
    body = {"title": title, "http_status": str(status), "description": description}
    response = Response(orjson.dumps(body), status=status, mimetype=TAXII_MEDIA, headers=headers)
    response.headers["Content-Type"] = TAXII_MEDIA
    return response


def _on_hub_error(error: HubError) -> Response:
    return error_response(error.status, error.title, error.message, error.headers)


def _on_medallion_error(error: MedallionError) -> Response:
    return error_response(error.status, type(error).__name__, error.message, getattr(error, "headers", None))


def _on_http_error(error: HTTPException) -> Response:
    code = error.code or 500
    description = error.description or error.name
    if code == 413:
        description = "the request body is larger than this server accepts"
    return error_response(code, error.name, description)


def _on_unexpected(error: Exception) -> Response:
    if isinstance(error, OperationalError):
        # The database went away or is busy (a dropped connection, a failover): nothing was acknowledged,
        # and a retry is safe, since publishing the same object version again changes nothing.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, type(error.orig).__name__)
        return error_response(
            503, "Service Unavailable", "the database is unavailable; retry shortly", {"Retry-After": "1"}
        )
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "Internal error", "the server failed to process the request; it has been logged")


def _on_auth_error(status: int) -> Response:
    if status == 401:
        return error_response(
            401,
            "Unauthorized",
            "authentication required: HTTP Basic (partner or key id and "
            "API key) or Authorization: Bearer/Token <API key>",
            {"WWW-Authenticate": REALM},
        )
    return error_response(status, "Forbidden", "not allowed")


def init_app(app: Flask, authenticate: Callable[[], object | None]) -> None:
    """Install the request normaliser and TAXII error handlers on ``app``; ``authenticate`` identifies the caller."""
    app.json = OrjsonProvider(app)
    app.request_class = HubRequest
    app.before_request(functools.partial(normalise_request, authenticate))
    app.register_error_handler(HubError, _on_hub_error)
    app.register_error_handler(MedallionError, _on_medallion_error)
    app.register_error_handler(HTTPException, _on_http_error)
    app.register_error_handler(Exception, _on_unexpected)
    medallion_auth.error_handler(_on_auth_error)
