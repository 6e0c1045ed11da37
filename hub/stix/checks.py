"""Property checks: each takes a JSON value and returns None or a problem description.

Also the predefined cyber-observable extensions of STIX 2.1 §6, checked the same way."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any, cast

from hub.stix.timestamps import parse_timestamp

Check = Callable[[Any], "str | None"]

_TYPE_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# RFC 4122 variant; versions 1-5 of RFC 4122 plus 6-8 of RFC 9562, which keeps the same layout.
_ID_RE = re.compile(
    r"([a-z][a-z0-9]*(?:-[a-z0-9]+)*)--"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-([1-8])[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)
_RELATIONSHIP_TYPE_RE = re.compile(r"[a-z0-9-]+")
_CUSTOM_PROPERTY_RE = re.compile(r"[a-z0-9_]{3,250}")
_DICT_KEY_RE = re.compile(r"[a-zA-Z0-9_-]{1,250}")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")
_LANG_RE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_SELECTOR_INDEX_RE = re.compile(r"\[([0-9]+)\]")
_HASH_VALUE_RES = {
    name: re.compile(rule, re.IGNORECASE)
    for name, rule in {
        "MD5": r"[0-9a-f]{32}",
        "SHA1": r"[0-9a-f]{40}",
        "SHA224": r"[0-9a-f]{56}",
        "SHA256": r"[0-9a-f]{64}",
        "SHA384": r"[0-9a-f]{96}",
        "SHA512": r"[0-9a-f]{128}",
        "SHA3224": r"[0-9a-f]{56}",
        "SHA3256": r"[0-9a-f]{64}",
        "SHA3384": r"[0-9a-f]{96}",
        "SHA3512": r"[0-9a-f]{128}",
        "RIPEMD160": r"[0-9a-f]{40}",
        "WHIRLPOOL": r"[0-9a-f]{128}",
        "TLSH": r"(?:T1)?[0-9a-f]{70}",
        "SSDEEP": r"[a-z0-9/+:.]{1,128}",
    }.items()
}

_SDO_TYPES = frozenset(
    "attack-pattern campaign course-of-action grouping identity incident indicator infrastructure "
    "intrusion-set location malware malware-analysis note observed-data opinion report threat-actor "
    "tool vulnerability".split()
)
_SRO_TYPES = frozenset({"relationship", "sighting"})
# The STIX 2.1 cyber-observable types (the only predefined types that may omit spec_version).
SCO_TYPES: frozenset[str] = frozenset(
    "artifact autonomous-system directory domain-name email-addr email-message file ipv4-addr ipv6-addr "
    "mac-addr mutex network-traffic process software url user-account windows-registry-key "
    "x509-certificate".split()
)
OBJECT_TYPES: frozenset[str] = _SDO_TYPES | _SRO_TYPES | SCO_TYPES  # every type STIX 2.1 defines
_CATEGORY = {
    **dict.fromkeys(_SDO_TYPES, "SDO"),
    **dict.fromkeys(_SRO_TYPES, "SRO"),
    **dict.fromkeys(SCO_TYPES, "SCO"),
}
_EXTENSION_TYPES = frozenset({"new-sdo", "new-sco", "new-sro", "property-extension", "toplevel-property-extension"})


def _check_str(value: Any) -> str | None:
    """A JSON string."""
    return None if isinstance(value, str) else "must be a string"


def _check_relationship_type(value: Any) -> str | None:
    """STIX 2.1 §5.1: a relationship type is made of a-z, 0-9 and '-'."""
    if not isinstance(value, str):
        return "must be a string"
    return None if _RELATIONSHIP_TYPE_RE.fullmatch(value) else f"must be made of a-z, 0-9 and '-', got {value!r}"


def _check_bool(value: Any) -> str | None:
    """A JSON boolean (not the strings 'true'/'false' that stix2 also takes)."""
    return None if value is True or value is False else "must be a boolean (true or false)"


def _integer(low: int | None = None, high: int | None = None) -> Check:
    """Check an integer (booleans excluded) within optional bounds."""

    def check(value: Any) -> str | None:
        if type(value) is not int:
            return "must be an integer"
        if low is not None and value < low:
            return f"must be at least {low}, got {value}"
        if high is not None and value > high:
            return f"must be at most {high}, got {value}"
        return None

    return check


def _number(low: float, high: float | None = None) -> Check:
    """Check a JSON number within bounds."""

    def check(value: Any) -> str | None:
        if type(value) not in (int, float):
            return "must be a number"
        if value < low:
            return f"must be at least {low}, got {value}"
        if high is not None and value > high:
            return f"must be at most {high}, got {value}"
        return None

    return check


def _check_timestamp(value: Any) -> str | None:
    """A STIX timestamp string."""
    try:
        parse_timestamp(value)
    except ValueError as exc:
        return f"is invalid: {exc}"
    return None


def _check_hex(value: Any) -> str | None:
    """A hex string (STIX 2.1 hex type: an even number of hex digits)."""
    ok = isinstance(value, str) and _HEX_RE.fullmatch(value)
    return None if ok else "must be an even number of hexadecimal characters"


def _check_binary(value: Any) -> str | None:
    """A strictly valid base64 string."""
    if not isinstance(value, str):
        return "must be a base64 string"
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return f"is not valid base64: {value[:40]!r}"
    return None


def _check_lang(value: Any) -> str | None:
    """An RFC 5646 language tag (shape only)."""
    ok = isinstance(value, str) and _LANG_RE.fullmatch(value)
    return None if ok else f"must be an RFC 5646 language tag, got {value!r}"


def _enum(*allowed: str) -> Check:
    """Check a closed vocabulary."""
    values = frozenset(allowed)

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in values:
            return None
        return f"must be one of {', '.join(allowed)}; got {value!r}"

    return check


def _reference(*types: str, excluded: frozenset[str] = frozenset()) -> Check:
    """Check a STIX identifier, optionally restricted to types or categories (SDO, SCO, SRO)."""
    categories = frozenset(t for t in types if t.isupper())
    specific = frozenset(types) - categories

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a STIX identifier string"
        match = _ID_RE.fullmatch(value)
        if match is None or len(match.group(1)) < 3:
            return f"is not a valid STIX identifier: {value!r}"
        ref_type = match.group(1)
        if ref_type in excluded:
            return f"must not refer to a {ref_type}"
        if categories:
            # Like stix2 with allow_custom: custom and meta types pass, known types of other categories fail.
            category = _CATEGORY.get(ref_type)
            if category is not None and category not in categories and ref_type not in specific:
                return f"must refer to {' or '.join(sorted(types))}, not {ref_type}"
        elif specific and ref_type not in specific:
            return f"must refer to {' or '.join(sorted(types))}, not {ref_type}"
        return None

    return check


def _list_of(item: Check) -> Check:
    """Check a non-empty list whose items all pass ``item``."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return "must be a list"
        if not value:
            return "must not be an empty list"
        for index, element in enumerate(value):
            problem = item(element)
            if problem:
                return f"item {index} {problem}"
        return None

    return check


def _check_dictionary(value: Any) -> str | None:
    """A non-empty STIX dictionary with valid keys."""
    if not isinstance(value, dict):
        return "must be a dictionary"
    if not value:
        return "must not be an empty dictionary"
    for key in value:
        if not _DICT_KEY_RE.fullmatch(key):
            return f"has an invalid key {key!r} (1-250 characters of a-z, A-Z, 0-9, '-', '_')"
    return None


def _check_hashes(value: Any) -> str | None:
    """A hashes dictionary; values of known algorithms must have the algorithm's form."""
    problem = _check_dictionary(value)
    if problem:
        return problem
    for name, digest in value.items():
        if not isinstance(digest, str):
            return f"value of {name!r} must be a string"
        rule = _HASH_VALUE_RES.get(name.replace("-", "").upper())
        if rule is not None and not rule.fullmatch(digest):
            return f"value of {name!r} is not a valid {name} hash: {digest!r}"
    return None


def _object(props: dict[str, Check], required: tuple[str, ...] = (), one_of: tuple[str, ...] = ()) -> Check:
    """Check an embedded object (a JSON object with known properties)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        for name in required:
            if name not in value:
                return f"needs property '{name}'"
        for name, element in value.items():
            prop_check = props.get(name)
            problem = prop_check(element) if prop_check is not None else None
            if problem:
                return f"property '{name}' {problem}"
        if one_of and not any(name in value for name in one_of):
            return f"needs at least one of {', '.join(one_of)}"
        return None

    return check


_STR = _check_str
_BOOL = _check_bool
_INT = _integer()
_UINT = _integer(0)
_TIMESTAMP = _check_timestamp
_STR_LIST = _list_of(_check_str)
_HASHES = _check_hashes
_DICT = _check_dictionary
_MARKING_REF = _reference("marking-definition")
_ANY_REFERENCE = _reference()
_ANY_REFERENCES = _list_of(_ANY_REFERENCE)
_EXTERNAL_REFERENCES = _list_of(
    _object(
        {"source_name": _STR, "description": _STR, "url": _STR, "external_id": _STR, "hashes": _HASHES},
        required=("source_name",),
        one_of=("description", "url", "external_id"),
    )
)
_KILL_CHAIN_PHASES = _list_of(
    _object({"kill_chain_name": _STR, "phase_name": _STR}, required=("kill_chain_name", "phase_name"))
)


def _check_granular_marking(value: Any) -> str | None:
    """One granular marking: selectors plus exactly one of marking_ref and lang."""
    if not isinstance(value, dict):
        return "must be an object"
    if "selectors" not in value:
        return "needs property 'selectors'"
    problem = _STR_LIST(value["selectors"])
    if problem:
        return f"property 'selectors' {problem}"
    if ("marking_ref" in value) == ("lang" in value):
        return "must have exactly one of 'marking_ref' and 'lang'"
    if "marking_ref" in value:
        problem = _MARKING_REF(value["marking_ref"])
        return f"property 'marking_ref' {problem}" if problem else None
    problem = _check_lang(value["lang"])
    return f"property 'lang' {problem}" if problem else None


_GRANULAR_MARKINGS = _list_of(_check_granular_marking)
_MARKING_REFS = _list_of(_MARKING_REF)


# --------------------------------------------------------------------------------------
# Cyber-observable extensions predefined by STIX 2.1 §6, keyed by name, with their SCO type


def _check_socket_options(value: Any) -> str | None:
    """socket-ext options: SO_*/IP_*/... keys with integer values."""
    problem = _check_dictionary(value)
    if problem:
        return problem
    prefixes = ("SO_", "ICMP_", "ICMP6_", "IP_", "IPV6_", "MCAST_", "TCP_", "IRLMP_")
    for key, option in value.items():
        if not key.startswith(prefixes):
            return f"key {key!r} must start with one of {', '.join(prefixes)}"
        if type(option) is not int:
            return f"value of {key!r} must be an integer"
    return None


def _pe_optional_header() -> Check:
    """Check the windows-pebinary-ext optional header: *_hex fields, hashes, the rest integers."""
    names = (
        "magic_hex major_linker_version minor_linker_version size_of_code size_of_initialized_data "
        "size_of_uninitialized_data address_of_entry_point base_of_code base_of_data image_base "
        "section_alignment file_alignment major_os_version minor_os_version major_image_version "
        "minor_image_version major_subsystem_version minor_subsystem_version win32_version_value_hex "
        "size_of_image size_of_headers checksum_hex subsystem_hex dll_characteristics_hex "
        "size_of_stack_reserve size_of_stack_commit size_of_heap_reserve size_of_heap_commit "
        "loader_flags_hex number_of_rva_and_sizes hashes"
    ).split()
    props: dict[str, Check] = {
        n: _HASHES if n == "hashes" else _check_hex if n.endswith("_hex") else _INT for n in names
    }
    return _object(props, one_of=tuple(names))


_ExtensionSpec = tuple[str, str, dict[str, Check], tuple[str, ...]]  # name, SCO type, properties, required
_SCO_EXTENSIONS: dict[str, tuple[str, Check]] = {
    name: (sco_type, _object(props, required, one_of=tuple(props)))
    for name, sco_type, props, required in cast(tuple[_ExtensionSpec, ...], (
        ("archive-ext", "file", {"contains_refs": _list_of(_reference("file", "directory")), "comment": _STR},
         ("contains_refs",)),
        ("ntfs-ext", "file", {"sid": _STR, "alternate_data_streams": _list_of(
            _object({"name": _STR, "hashes": _HASHES, "size": _UINT}, required=("name",)))}, ()),
        ("pdf-ext", "file", {"version": _STR, "is_optimized": _BOOL, "document_info_dict": _DICT,
                             "pdfid0": _STR, "pdfid1": _STR}, ()),
        ("raster-image-ext", "file", {"image_height": _INT, "image_width": _INT, "bits_per_pixel": _INT,
                                      "exif_tags": _DICT}, ()),
        ("windows-pebinary-ext", "file", {
            "pe_type": _STR, "imphash": _STR, "machine_hex": _check_hex, "number_of_sections": _UINT,
            "time_date_stamp": _TIMESTAMP, "pointer_to_symbol_table_hex": _check_hex,
            "number_of_symbols": _UINT, "size_of_optional_header": _UINT, "characteristics_hex": _check_hex,
            "file_header_hashes": _HASHES, "optional_header": _pe_optional_header(),
            "sections": _list_of(_object({"name": _STR, "size": _UINT, "entropy": _number(float("-inf")),
                                          "hashes": _HASHES}, required=("name",)))}, ("pe_type",)),
        ("http-request-ext", "network-traffic", {
            "request_method": _STR, "request_value": _STR, "request_version": _STR, "request_header": _DICT,
            "message_body_length": _INT, "message_body_data_ref": _reference("artifact")},
         ("request_method", "request_value")),
        ("icmp-ext", "network-traffic", {"icmp_type_hex": _check_hex, "icmp_code_hex": _check_hex},
         ("icmp_type_hex", "icmp_code_hex")),
        ("socket-ext", "network-traffic", {
            "address_family": _enum("AF_UNSPEC", "AF_INET", "AF_IPX", "AF_APPLETALK", "AF_NETBIOS",
                                    "AF_INET6", "AF_IRDA", "AF_BTH"),
            "is_blocking": _BOOL, "is_listening": _BOOL, "options": _check_socket_options,
            "socket_type": _enum("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET"),
            "socket_descriptor": _UINT, "socket_handle": _INT}, ("address_family",)),
        ("tcp-ext", "network-traffic", {"src_flags_hex": _check_hex, "dst_flags_hex": _check_hex}, ()),
        ("windows-process-ext", "process", {
            "aslr_enabled": _BOOL, "dep_enabled": _BOOL, "priority": _STR, "owner_sid": _STR,
            "window_title": _STR, "startup_info": _DICT,
            "integrity_level": _enum("low", "medium", "high", "system")}, ()),
        ("windows-service-ext", "process", {
            "service_name": _STR, "descriptions": _STR_LIST, "display_name": _STR, "group_name": _STR,
            "start_type": _enum("SERVICE_AUTO_START", "SERVICE_BOOT_START", "SERVICE_DEMAND_START",
                                "SERVICE_DISABLED", "SERVICE_SYSTEM_ALERT"),
            "service_dll_refs": _list_of(_reference("file")),
            "service_type": _enum("SERVICE_KERNEL_DRIVER", "SERVICE_FILE_SYSTEM_DRIVER",
                                  "SERVICE_WIN32_OWN_PROCESS", "SERVICE_WIN32_SHARE_PROCESS"),
            "service_status": _enum("SERVICE_CONTINUE_PENDING", "SERVICE_PAUSE_PENDING", "SERVICE_PAUSED",
                                    "SERVICE_RUNNING", "SERVICE_START_PENDING", "SERVICE_STOP_PENDING",
                                    "SERVICE_STOPPED")}, ()),
        ("unix-account-ext", "user-account", {"gid": _INT, "groups": _STR_LIST, "home_dir": _STR,
                                              "shell": _STR}, ()),
    ))
}  # fmt: skip


def _extensions(object_type: str | None) -> Check:
    """Check an 'extensions' dictionary: extension-definition ids, or the predefined SCO extensions."""
    predefined = {name: check for name, (sco, check) in _SCO_EXTENSIONS.items() if sco == object_type}

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be a dictionary"
        if not value:
            return "must not be an empty dictionary"
        for key, extension in value.items():
            if key.startswith("extension-definition--"):
                match = _ID_RE.fullmatch(key)
                if match is None or match.group(1) != "extension-definition":
                    return f"key {key!r} is not a valid extension-definition id"
                if not isinstance(extension, dict):
                    return f"entry {key!r} must be an object"
                kind = extension.get("extension_type")
                if kind is not None and not (isinstance(kind, str) and kind in _EXTENSION_TYPES):
                    return f"entry {key!r} has an unknown extension_type {kind!r}"
                continue
            extension_check = predefined.get(key)
            if extension_check is None:
                return f"key {key!r} is neither an extension-definition id nor an extension of {object_type}"
            problem = extension_check(extension)
            if problem:
                return f"entry {key!r}: {problem}"
        return None

    return check
