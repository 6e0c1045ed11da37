"""stix2-validator as an oracle for ``hub.stix.validate``: its verdict on one object, offline and fast.

The options (``OPTIONS``) validate every object as STIX 2.1 whatever it declares, and report only what
the specification requires: the SHOULD checks are off, as they only ever produce warnings outside the
validator's ``strict`` mode, and a best practice is not a reason to refuse an object.

Network: stix2-validator fetches a JSON schema over HTTP when a ``$ref`` is an ``http(s)://`` URL
(``retrieve_from_filesystem``). Its bundled schemas are rewritten to local paths before use, so none
should; ``offline()`` makes any attempt fail loudly instead of reaching the network.

Speed: the validator builds a new schema registry for each object and crawls every referenced schema
again (about 6 ms an object). ``fast_schemas()`` swaps in a loader that builds each validator once, on a
registry of the bundled schemas crawled once, which cuts that to about 2 ms; the differential test checks
that the verdicts and messages are the library's own.
"""

from __future__ import annotations

import contextlib
import functools
import pathlib
import socket
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import stix2validator.validator as library
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from stix2validator import ValidationOptions, validate_instance

OPTIONS = ValidationOptions(
    version="2.1",  # every object is judged as STIX 2.1, also one that declares 2.0 or nothing
    disabled="all",  # no SHOULD checks: warnings only, and some raise on objects without an id
    strict=False,
    strict_types=False,  # custom object types and properties are allowed by STIX 2.1
    strict_properties=False,
    enforce_refs=False,  # one object at a time: references are checked for form, not presence
    interop=False,
)


class Verdict(NamedTuple):
    """stix2-validator's verdict on one object: valid or not, and its error messages."""

    valid: bool
    errors: tuple[str, ...]


def verdict(obj: Any) -> Verdict:
    """Validate one object with stix2-validator; an exception it raises counts as a refusal."""
    try:
        result = validate_instance(obj, OPTIONS)
    except Exception as exc:  # ValidationError for non-objects, KeyError/TypeError on malformed input
        return Verdict(False, (f"stix2-validator raised {type(exc).__name__}: {exc}",))
    return Verdict(bool(result.is_valid), tuple(str(e.message) for e in result.errors))


def _refuse_network(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"stix2-validator tried to reach the network: {args[:2]}")


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Make any HTTP request or socket connection during validation an error."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(library.requests, "get", _refuse_network)
        patch.setattr(socket.socket, "connect", _refuse_network)
        patch.setattr(socket, "create_connection", _refuse_network)
        yield
    assert library._HTTP_SCHEMAS == {}, f"schemas fetched over HTTP: {sorted(library._HTTP_SCHEMAS)}"


@functools.cache
def _crawled_registry(schema_dir: str) -> Registry:
    """Every bundled schema under ``schema_dir``, loaded as the library loads it, crawled once."""
    resources = []
    for path in sorted(pathlib.Path(schema_dir).rglob("*.json")):
        if "examples" not in path.parts:  # the library's find_schema skips them too
            uri = path.as_uri()
            resources.append((uri, library.retrieve_from_filesystem(uri, schema_dir)))
    retrieve = functools.partial(library.retrieve_from_filesystem, schema_dir=schema_dir)
    return Registry(retrieve=retrieve).with_resources(resources).crawl()


_VALIDATORS: dict[tuple[str, str], Any] = {}


def _load_validator(schema_path: str, schema: dict, schema_dir: str) -> Any:
    """``library.load_validator``, built once per schema on the crawled registry."""
    key = (schema_path, schema_dir)
    if key not in _VALIDATORS:
        patched = library._PATCHED_SCHEMAS.get(schema_path)
        if patched is None:
            patched = library._PATCHED_SCHEMAS[schema_path] = library.patch_schema(schema, schema_path)
        registry = _crawled_registry(schema_dir).with_resource(schema_path, DRAFT202012.create_resource(patched))
        _VALIDATORS[key] = library.STIXValidator(
            patched, registry=registry, format_checker=library.Draft202012Validator.FORMAT_CHECKER
        )
    return _VALIDATORS[key]


@contextlib.contextmanager
def fast_schemas() -> Iterator[None]:
    """Use the once-built schema validators for the duration."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(library, "load_validator", _load_validator)
        yield
