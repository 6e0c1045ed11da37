"""``validate``: one STIX 2.1 object against its type's specification, every problem named."""

from __future__ import annotations

import functools
from typing import Any

from hub.stix.checks import _ANY_REFERENCE, _ANY_REFERENCES, _CUSTOM_PROPERTY_RE, _ID_RE, _TYPE_RE, Check
from hub.stix.rules import _granular_selectors_rule
from hub.stix.specs import _CUSTOM_SPEC, _SDO_REQUIRED, _SPECS, _Spec


def _is_type_name(text: str) -> bool:
    """STIX 2.1 type names: 3-250 characters of a-z, 0-9 and single inner hyphens, starting with a letter."""
    return 3 <= len(text) <= 250 and _TYPE_RE.fullmatch(text) is not None


def _check_header(obj: dict, object_type: str, spec: _Spec) -> list[str]:
    """Check 'id' and 'spec_version' (problems without the object label)."""
    problems = []
    object_id = obj.get("id")
    if isinstance(object_id, str):
        match = _ID_RE.fullmatch(object_id)
        if match is None:
            problems.append(f"property 'id' is not a valid STIX identifier <type>--<UUID>: {object_id!r}")
        elif match.group(1) != object_type:
            problems.append(f"property 'id' must start with '{object_type}--'")
        elif spec.kind == "sco" and match.group(2) not in ("4", "5"):
            problems.append("property 'id' of a cyber-observable must use a version 4 or 5 UUID")
        elif spec.kind == "sco" and match.group(2) != "4" and _lacks_id_contributors(obj, object_type):
            problems.append(_uuid4_required(object_type))
    elif object_id is not None:
        problems.append("property 'id' must be a string")
    if "spec_version" in obj and obj["spec_version"] != "2.1":
        problems.append(f"property 'spec_version' must be '2.1', got {obj['spec_version']!r}")
    return problems


# STIX 2.1 §6: the ID contributing properties of the observables for which all of them are optional
# (process has none). Without any of them a deterministic UUIDv5 names nothing, so a UUIDv4 is required.
_ID_CONTRIBUTING: dict[str, tuple[str, ...]] = {
    "artifact": ("hashes", "payload_bin"),
    "email-message": ("from_ref", "subject", "body"),
    "process": (),
    "user-account": ("account_type", "user_id", "account_login"),
    "windows-registry-key": ("key", "values"),
    "x509-certificate": ("hashes", "serial_number"),
}


def _lacks_id_contributors(obj: dict, object_type: str) -> bool:
    """Tell whether an observable carries none of its ID contributing properties (False for other types)."""
    names = _ID_CONTRIBUTING.get(object_type)
    return names is not None and not any(name in obj for name in names)


def _uuid4_required(object_type: str) -> str:
    """The problem of an observable id that must be a UUIDv4 for want of ID contributing properties."""
    names = ", ".join(f"'{n}'" for n in _ID_CONTRIBUTING[object_type])
    why = (
        f"it has none of its ID contributing properties ({names})" if names else "it has no ID contributing properties"
    )
    return f"property 'id' of a {object_type} must use a version 4 UUID: {why} (STIX 2.1 §2.9)"


def _bad_custom_name(value: Any) -> str:
    """The problem of a custom property whose name breaks the naming rule, whatever its value."""
    return "is not a valid custom property name (3-250 characters of a-z, 0-9 and '_')"


@functools.lru_cache(maxsize=4096)
def _custom_property_check(name: str) -> Check:
    """How to check a property the type does not define (custom, or from a toplevel property extension)."""
    # Cached per name: custom names (x_mitre_*, x_opencti_*, ...) repeat on every object of a feed.
    if not _CUSTOM_PROPERTY_RE.fullmatch(name):
        return _bad_custom_name
    if name.endswith("_ref"):
        return _ANY_REFERENCE
    if name.endswith("_refs"):
        return _ANY_REFERENCES
    return _custom_value


def _custom_value(value: Any) -> str | None:
    """Any value but an empty list (STIX 2.1 §2.7 forbids them; null is refused before the check)."""
    return "must not be an empty list" if value == [] else None


_UNDEFINED: Any = object()


def _check_properties(obj: dict, props: dict[str, Check | None]) -> list[str]:
    """Check every property value of ``obj`` (problems without the object label)."""
    problems = []
    for name, value in obj.items():
        check = props.get(name, _UNDEFINED)  # one look-up: this loop is the validator's hot path
        if check is _UNDEFINED:
            check = _custom_property_check(name)
        if check is None:
            continue
        problem = "must not be null" if value is None else check(value)
        if problem:
            problems.append(f"property '{name}' {problem}")
    return problems


def validate(obj: dict) -> list[str]:
    """Validate one STIX 2.1 object; return [] when valid, else reasons that name the property."""
    if not isinstance(obj, dict):
        return [f"a STIX object must be a JSON object, not {type(obj).__name__}"]
    object_type = obj.get("type")
    object_id = obj.get("id")
    label = object_id if isinstance(object_id, str) else str(object_type or "object")
    if object_type is None:
        return [f"{label}: property 'type' is required"]
    if not (isinstance(object_type, str) and _is_type_name(object_type)):
        return [
            f"{label}: property 'type' is not a valid STIX type name "
            f"(3-250 characters of a-z, 0-9 and single hyphens, starting with a letter): {object_type!r}"
        ]
    if object_type == "bundle":
        return [f"{label}: a bundle is an envelope, not a STIX object: validate its objects one by one"]
    spec = _SPECS.get(object_type, _CUSTOM_SPEC)
    required = spec.required
    if spec.kind == "custom" and ("created" in obj or "modified" in obj):
        required = _SDO_REQUIRED  # a custom SDO or SRO, which STIX 2.0 content without spec_version looks like
    problems = [f"property '{name}' is required" for name in required if obj.get(name) is None]
    problems += _check_header(obj, object_type, spec)
    problems += _check_properties(obj, spec.props)
    for rule in spec.rules:
        problem = rule(obj)
        if problem:
            problems.append(problem)
    if "granular_markings" in obj:
        problem = _granular_selectors_rule(obj)
        if problem:
            problems.append(problem)
    return [f"{label}: {p}" for p in problems]
