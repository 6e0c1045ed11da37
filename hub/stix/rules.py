"""Object-level rules: each takes a whole object and returns None or a complete problem description."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.stix.checks import _SELECTOR_INDEX_RE
from hub.stix.markings import _TLP2_BY_ID, TLP1_MARKINGS
from hub.stix.patterns import _library_pattern_check, validate_pattern
from hub.stix.timestamps import parse_timestamp

Rule = Callable[[dict], "str | None"]


def _instant(obj: dict, name: str) -> int | None:
    """Microseconds of a timestamp property, or None when absent or invalid (reported elsewhere)."""
    value = obj.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _not_before(later: str, earlier: str, strict: bool = False) -> Rule:
    """Require ``later`` >= ``earlier`` (``>`` when strict) when both are present."""

    def rule(obj: dict) -> str | None:
        if later not in obj or earlier not in obj:
            return None
        late, early = _instant(obj, later), _instant(obj, earlier)
        if late is None or early is None or late > early or (late == early and not strict):
            return None
        relation = "is not later than" if strict else "is earlier than"
        return f"property '{later}' ({obj[later]}) {relation} '{earlier}' ({obj[earlier]})"

    return rule


def _at_least_one(*names: str) -> Rule:
    """Require at least one of ``names``."""

    def rule(obj: dict) -> str | None:
        if any(n in obj for n in names):
            return None
        return f"needs at least one of the properties {', '.join(names)}"

    return rule


def _exactly_one(first: str, second: str) -> Rule:
    """Require exactly one of two properties."""

    def rule(obj: dict) -> str | None:
        if (first in obj) != (second in obj):
            return None
        return f"needs exactly one of the properties '{first}' and '{second}'"

    return rule


def _malware_rule(obj: dict) -> str | None:
    """A malware family needs a name."""
    if obj.get("is_family") is True and "name" not in obj:
        return "property 'name' is required when 'is_family' is true"
    return None


def _location_rule(obj: dict) -> str | None:
    """A location needs a region, a country or coordinates; coordinates come in pairs."""
    if ("latitude" in obj) != ("longitude" in obj):
        return "properties 'latitude' and 'longitude' must be used together"
    if "precision" in obj and "latitude" not in obj:
        return "property 'precision' needs 'latitude' and 'longitude'"
    if not ("region" in obj or "country" in obj or "latitude" in obj):
        return "needs property 'region', 'country', or 'latitude' and 'longitude'"
    return None


def _indicator_pattern_rule(obj: dict) -> str | None:
    """A STIX-language indicator pattern must be a valid pattern."""
    pattern = obj.get("pattern")
    if obj.get("pattern_type") != "stix" or not isinstance(pattern, str):
        return None
    version = obj.get("pattern_version", "2.1")
    # Like the stix2 library: a pattern_version other than 2.1 selects the 2.0 pattern grammar.
    reason = validate_pattern(pattern) if version == "2.1" else _library_pattern_check(pattern, "2.0")
    return f"property 'pattern' is not a valid STIX pattern: {reason}" if reason else None


def _artifact_rule(obj: dict) -> str | None:
    """An artifact has its payload inline or by URL (then with hashes), not both."""
    if ("payload_bin" in obj) == ("url" in obj):
        return "needs exactly one of the properties 'payload_bin' and 'url'"
    if "url" in obj and "hashes" not in obj:
        return "property 'hashes' is required when 'url' is present"
    return None


def _email_message_rule(obj: dict) -> str | None:
    """Multipart bodies only on multipart messages, a plain body only on the others."""
    if "body_multipart" in obj and obj.get("is_multipart") is not True:
        return "property 'body_multipart' needs 'is_multipart' true"
    if "body" in obj and obj.get("is_multipart") is True:
        return "property 'body' must not be used when 'is_multipart' is true"
    return None


def _network_traffic_rule(obj: dict) -> str | None:
    """Ended traffic cannot be active."""
    if "end" in obj and obj.get("is_active") is True:
        return "property 'is_active' must be false when 'end' is present"
    return None


_PROCESS_OWN = (
    "is_hidden pid created_time cwd command_line environment_variables opened_connection_refs "
    "creator_user_ref image_ref parent_ref child_refs object_marking_refs granular_markings extensions"
).split()
_X509_OWN = (
    "is_self_signed hashes version serial_number signature_algorithm issuer validity_not_before "
    "validity_not_after subject subject_public_key_algorithm subject_public_key_modulus "
    "subject_public_key_exponent x509_v3_extensions"
).split()


def _same_marking(obj: dict, builtin: dict) -> list[str]:
    """Names of the properties in which ``obj`` differs from a built-in marking definition."""
    differing = []
    for name in sorted(obj.keys() | builtin.keys()):
        if name == "created":
            if _instant(obj, name) != _instant(builtin, name):
                differing.append(name)
        elif obj.get(name) != builtin.get(name):
            differing.append(name)
    return differing


def _tlp_marking_rule(obj: dict) -> str | None:
    """STIX 2.1 §7.2.1.4: the four built-in TLP marking definitions are the only TLP ones, unchanged."""
    marking_id = obj.get("id")
    if not isinstance(marking_id, str):
        return None  # reported by the 'id' check
    builtin = TLP1_MARKINGS.get(marking_id)
    if builtin is not None:
        differing = _same_marking(obj, builtin)
        if differing:
            names = ", ".join(f"'{n}'" for n in differing)
            noun = "property" if len(differing) == 1 else "properties"
            return (
                f"{noun} {names} of a built-in TLP id differ from the STIX 2.1 {builtin['name']} "
                "marking: TLP marking definitions must be used unchanged (STIX 2.1 §7.2.1.4)"
            )
        return None
    if obj.get("definition_type") == "tlp":
        return (
            "property 'definition_type' is 'tlp' but the id is not one of the four STIX 2.1 TLP "
            "marking definitions (STIX 2.1 §7.2.1.4)"
        )
    tlp2 = _TLP2_BY_ID.get(marking_id)
    if tlp2 is not None and (obj.get("name") != tlp2["name"] or obj.get("extensions") != tlp2["extensions"]):
        # The hub maps markings to levels by id, so an id must not claim a different colour.
        return f"property 'extensions' or 'name' contradicts the TLP 2.0 id {marking_id} ({tlp2['name']})"
    return None


def _marking_definition_rule(obj: dict) -> str | None:
    """A marking has a tlp/statement definition or extensions, and obeys the TLP rule."""
    kind, definition = obj.get("definition_type"), obj.get("definition")
    if "extensions" not in obj and not (kind and definition):
        return "needs properties 'definition_type' and 'definition', or 'extensions'"
    if ("definition_type" in obj) != ("definition" in obj):
        return "properties 'definition_type' and 'definition' must be used together"
    if "definition_type" in obj:
        if kind not in ("tlp", "statement"):
            return f"property 'definition_type' must be 'tlp' or 'statement', got {kind!r}"
        if not (isinstance(definition, dict) and definition.keys() == {kind} and isinstance(definition[kind], str)):
            return f"property 'definition' must be an object with a single string property '{kind}'"
    return _tlp_marking_rule(obj)


def _selector_resolves(obj: dict, selector: str) -> bool:
    """Tell whether a granular-marking selector points at content present in ``obj``."""
    node: Any = obj
    for step in selector.split("."):
        if isinstance(node, dict):
            if step not in node:
                return False
            node = node[step]
        elif isinstance(node, list):
            index = _SELECTOR_INDEX_RE.fullmatch(step)
            if index is None or int(index.group(1)) >= len(node):
                return False
            node = node[int(index.group(1))]
        else:
            return False
    return True


def _granular_selectors_rule(obj: dict) -> str | None:
    """Every granular-marking selector must point at content of the object."""
    markings = obj.get("granular_markings")
    if not isinstance(markings, list):
        return None
    for marking in markings:
        selectors = marking.get("selectors") if isinstance(marking, dict) else None
        for selector in selectors if isinstance(selectors, list) else ():
            if isinstance(selector, str) and not _selector_resolves(obj, selector):
                return f"property 'granular_markings' selector {selector!r} does not match any content"
    return None
