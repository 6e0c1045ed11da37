"""Fast STIX 2.1 helpers: timestamps, TLP marking ids and object/pattern validation.

Pure functions over plain JSON values (dicts, lists, str, int, ...): no Flask, no SQL.
``validate`` checks one object against STIX 2.1 OS (required properties, property types,
identifiers, timestamps, markings, extensions, the TLP rule of §7.2.1.4 and, for
``pattern_type: stix`` indicators, the pattern) and explains every problem by naming
the property. Patterns go through a small hand-written recogniser for the common
SIEM subset; anything outside that subset is decided by stix2-patterns itself, so
``validate_pattern`` always gives the library's verdict.

    markings    TLP marking definitions, the ids mapped to levels, markings that state a TLP
    timestamps  parse and format STIX and TAXII timestamps
    patterns    the pattern recogniser and stix2-patterns
    checks      property checks (one JSON value each) and the predefined observable extensions
    rules       object-level rules (one whole object each)
    specs       each object type's properties, required ones and rules
    validate    one object against its type's specification
"""

from __future__ import annotations

from hub.stix.checks import OBJECT_TYPES, SCO_TYPES
from hub.stix.markings import (
    TLP1_MARKINGS,
    TLP2_EXTENSION_DEFINITION,
    TLP2_MARKINGS,
    TLP_MARKING_IDS,
    is_statement_marking,
    marking_tlp,
    stated_tlp,
)
from hub.stix.patterns import validate_pattern
from hub.stix.timestamps import format_timestamp, object_version, parse_filter_timestamp, parse_timestamp
from hub.stix.validate import validate

__all__ = [
    "OBJECT_TYPES",
    "SCO_TYPES",
    "TLP1_MARKINGS",
    "TLP2_EXTENSION_DEFINITION",
    "TLP2_MARKINGS",
    "TLP_MARKING_IDS",
    "format_timestamp",
    "is_statement_marking",
    "marking_tlp",
    "object_version",
    "parse_filter_timestamp",
    "parse_timestamp",
    "stated_tlp",
    "validate",
    "validate_pattern",
]
