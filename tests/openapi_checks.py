"""What the OpenAPI tests check responses with: the document, schemathesis's checks and the line item check."""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import orjson
import schemathesis
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.specs.openapi import checks

from hub import openapi

DOC = json.loads(openapi.document())
SCHEMA = schemathesis.openapi.from_dict(DOC)
# The first four judge any response; the rest judge generated requests (valid accepted, invalid refused,
# credentials enforced).
CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.positive_data_acceptance,
    checks.ignored_auth,
]


@schemathesis.deserializer("text/plain", "text/csv", "application/x-ndjson")
def _as_text(ctx, response: Response) -> str:
    """The body as one string, so the document's string schema (its pattern) is checked, not skipped."""
    return response.content.decode("utf-8")


def items(media: str, text: str) -> list:
    """The items of a line-based feed body: CSV rows by column name, NDJSON documents, or lines."""
    if media == "text/csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    if media == "application/x-ndjson":
        return [orjson.loads(line) for line in text.splitlines()]
    return text.splitlines()


def items_conform(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every row or line of a 200 body (a feed, the audit CSV) matches the ``x-item-schema`` of its media type."""
    if response.status_code != 200:
        return None
    media = response.headers["content-type"][0].split(";")[0]
    described = DOC["paths"][case.operation.path]["get"]["responses"]["200"]["content"].get(media, {})
    if "x-item-schema" not in described:
        return None
    validator = jsonschema.Draft202012Validator({**described["x-item-schema"], "components": DOC["components"]})
    for item in items(media, response.content.decode("utf-8")):
        error = jsonschema.exceptions.best_match(validator.iter_errors(item))
        if error is not None:
            raise AssertionError(
                f"{media} item {item!r} breaks x-item-schema at {list(error.absolute_path)}: {error.message}"
            )
    return True
