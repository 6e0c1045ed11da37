"""What STIX 2.1 requires of each object type: properties, required ones and object-level rules."""

from __future__ import annotations

from typing import NamedTuple

from hub.stix.checks import (
    _BOOL,
    _DICT,
    _EXTENSION_TYPES,
    _EXTERNAL_REFERENCES,
    _GRANULAR_MARKINGS,
    _HASHES,
    _INT,
    _KILL_CHAIN_PHASES,
    _MARKING_REFS,
    _STR,
    _STR_LIST,
    _TIMESTAMP,
    _UINT,
    Check,
    _check_binary,
    _check_hex,
    _check_lang,
    _check_relationship_type,
    _enum,
    _extensions,
    _integer,
    _list_of,
    _number,
    _object,
    _reference,
)
from hub.stix.rules import (
    _PROCESS_OWN,
    _X509_OWN,
    Rule,
    _artifact_rule,
    _at_least_one,
    _email_message_rule,
    _exactly_one,
    _indicator_pattern_rule,
    _location_rule,
    _malware_rule,
    _marking_definition_rule,
    _network_traffic_rule,
    _not_before,
)


class _Spec(NamedTuple):
    """What validate() needs to know about one object type."""

    kind: str  # "sdo", "sro", "sco", "marking", "meta" (language-content, extension-definition), "custom"
    props: dict[str, Check | None]  # None: checked before the property loop
    required: tuple[str, ...]
    rules: tuple[Rule, ...]


_HEADER = {"type": None, "id": None, "spec_version": None}
_SDO_COMMON: dict[str, Check | None] = {
    **_HEADER,
    "created_by_ref": _reference("identity"),
    "created": _TIMESTAMP,
    "modified": _TIMESTAMP,
    "revoked": _BOOL,
    "labels": _STR_LIST,
    "confidence": _integer(0, 100),
    "lang": _check_lang,
    "external_references": _EXTERNAL_REFERENCES,
    "object_marking_refs": _MARKING_REFS,
    "granular_markings": _GRANULAR_MARKINGS,
    "extensions": _extensions(None),
}
_SDO_REQUIRED = ("type", "spec_version", "id", "created", "modified")
_VERSIONED = (_not_before("modified", "created"),)
_SEEN = _not_before("last_seen", "first_seen")
_ANY_OBJECT_REFS = _list_of(_reference("SCO", "SDO", "SRO"))
_RELATIONSHIP_ENDS = frozenset({"bundle", "language-content", "marking-definition", "relationship", "sighting"})


def _sdo(kind: str, props: dict[str, Check], required: tuple[str, ...] = (), *rules: Rule) -> _Spec:
    """Spec of an SDO or SRO: the common properties plus the type's own."""
    return _Spec(kind, {**_SDO_COMMON, **props}, _SDO_REQUIRED + required, _VERSIONED + rules)


def _sco(sco_type: str, props: dict[str, Check], required: tuple[str, ...] = (), *rules: Rule) -> _Spec:
    """Spec of a cyber-observable: the SCO common properties plus the type's own."""
    common = {
        **_HEADER,
        "object_marking_refs": _MARKING_REFS,
        "granular_markings": _GRANULAR_MARKINGS,
        "defanged": _BOOL,
        "extensions": _extensions(sco_type),
    }
    return _Spec("sco", {**common, **props}, ("type", "id") + required, rules)


_ADDRESS_REFS = {
    "value": _STR,
    "resolves_to_refs": _list_of(_reference("mac-addr")),
    "belongs_to_refs": _list_of(_reference("autonomous-system")),
}
_TRAFFIC_ENDPOINT = _reference("ipv4-addr", "ipv6-addr", "mac-addr", "domain-name")

_SPECS: dict[str, _Spec] = {
    "attack-pattern": _sdo("sdo", {"name": _STR, "description": _STR, "aliases": _STR_LIST,
                                   "kill_chain_phases": _KILL_CHAIN_PHASES}, ("name",)),
    "campaign": _sdo("sdo", {"name": _STR, "description": _STR, "aliases": _STR_LIST,
                             "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP, "objective": _STR},
                     ("name",), _SEEN),
    "course-of-action": _sdo("sdo", {"name": _STR, "description": _STR}, ("name",)),
    "grouping": _sdo("sdo", {"name": _STR, "description": _STR, "context": _STR,
                             "object_refs": _ANY_OBJECT_REFS}, ("context", "object_refs")),
    "identity": _sdo("sdo", {"name": _STR, "description": _STR, "roles": _STR_LIST, "identity_class": _STR,
                             "sectors": _STR_LIST, "contact_information": _STR}, ("name",)),
    "incident": _sdo("sdo", {"name": _STR, "description": _STR, "kill_chain_phases": _KILL_CHAIN_PHASES},
                     ("name",)),
    "indicator": _sdo("sdo", {"name": _STR, "description": _STR, "indicator_types": _STR_LIST,
                              "pattern": _STR, "pattern_type": _STR, "pattern_version": _STR,
                              "valid_from": _TIMESTAMP, "valid_until": _TIMESTAMP,
                              "kill_chain_phases": _KILL_CHAIN_PHASES},
                      ("pattern", "pattern_type", "valid_from"),
                      _not_before("valid_until", "valid_from", strict=True), _indicator_pattern_rule),
    "infrastructure": _sdo("sdo", {"name": _STR, "description": _STR, "infrastructure_types": _STR_LIST,
                                   "aliases": _STR_LIST, "kill_chain_phases": _KILL_CHAIN_PHASES,
                                   "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP}, ("name",), _SEEN),
    "intrusion-set": _sdo("sdo", {"name": _STR, "description": _STR, "aliases": _STR_LIST,
                                  "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP, "goals": _STR_LIST,
                                  "resource_level": _STR, "primary_motivation": _STR,
                                  "secondary_motivations": _STR_LIST}, ("name",), _SEEN),
    "location": _sdo("sdo", {"name": _STR, "description": _STR, "latitude": _number(-90, 90),
                             "longitude": _number(-180, 180), "precision": _number(0), "region": _STR,
                             "country": _STR, "administrative_area": _STR, "city": _STR,
                             "street_address": _STR, "postal_code": _STR}, (), _location_rule),
    "malware": _sdo("sdo", {"name": _STR, "description": _STR, "malware_types": _STR_LIST, "is_family": _BOOL,
                            "aliases": _STR_LIST, "kill_chain_phases": _KILL_CHAIN_PHASES,
                            "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP,
                            "operating_system_refs": _list_of(_reference("software")),
                            "architecture_execution_envs": _STR_LIST, "implementation_languages": _STR_LIST,
                            "capabilities": _STR_LIST,
                            "sample_refs": _list_of(_reference("artifact", "file"))},
                    ("is_family",), _SEEN, _malware_rule),
    "malware-analysis": _sdo("sdo", {
        "product": _STR, "version": _STR, "host_vm_ref": _reference("software"),
        "operating_system_ref": _reference("software"),
        "installed_software_refs": _list_of(_reference("software")),
        "configuration_version": _STR, "modules": _STR_LIST, "analysis_engine_version": _STR,
        "analysis_definition_version": _STR, "submitted": _TIMESTAMP, "analysis_started": _TIMESTAMP,
        "analysis_ended": _TIMESTAMP, "result_name": _STR, "result": _STR,
        "analysis_sco_refs": _list_of(_reference("SCO")), "sample_ref": _reference("SCO")},
        ("product",), _at_least_one("result", "analysis_sco_refs")),
    "note": _sdo("sdo", {"abstract": _STR, "content": _STR, "authors": _STR_LIST,
                         "object_refs": _ANY_OBJECT_REFS}, ("content", "object_refs")),
    "observed-data": _sdo("sdo", {"first_observed": _TIMESTAMP, "last_observed": _TIMESTAMP,
                                  "number_observed": _integer(1, 999_999_999),
                                  "objects": _DICT, "object_refs": _list_of(_reference("SCO", "SRO"))},
                          ("first_observed", "last_observed", "number_observed"),
                          _not_before("last_observed", "first_observed"),
                          _exactly_one("objects", "object_refs")),
    "opinion": _sdo("sdo", {"explanation": _STR, "authors": _STR_LIST,
                            "opinion": _enum("strongly-disagree", "disagree", "neutral", "agree",
                                             "strongly-agree"),
                            "object_refs": _ANY_OBJECT_REFS}, ("opinion", "object_refs")),
    "report": _sdo("sdo", {"name": _STR, "description": _STR, "report_types": _STR_LIST,
                           "published": _TIMESTAMP, "object_refs": _ANY_OBJECT_REFS},
                   ("name", "published", "object_refs")),
    "threat-actor": _sdo("sdo", {"name": _STR, "description": _STR, "threat_actor_types": _STR_LIST,
                                 "aliases": _STR_LIST, "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP,
                                 "roles": _STR_LIST, "goals": _STR_LIST, "sophistication": _STR,
                                 "resource_level": _STR, "primary_motivation": _STR,
                                 "secondary_motivations": _STR_LIST, "personal_motivations": _STR_LIST},
                         ("name",), _SEEN),
    "tool": _sdo("sdo", {"name": _STR, "description": _STR, "tool_types": _STR_LIST, "aliases": _STR_LIST,
                         "kill_chain_phases": _KILL_CHAIN_PHASES, "tool_version": _STR}, ("name",)),
    "vulnerability": _sdo("sdo", {"name": _STR, "description": _STR}, ("name",)),
    "relationship": _sdo("sro", {"relationship_type": _check_relationship_type, "description": _STR,
                                 "source_ref": _reference(excluded=_RELATIONSHIP_ENDS),
                                 "target_ref": _reference(excluded=_RELATIONSHIP_ENDS),
                                 "start_time": _TIMESTAMP, "stop_time": _TIMESTAMP},
                         ("relationship_type", "source_ref", "target_ref"),
                         _not_before("stop_time", "start_time", strict=True)),
    "sighting": _sdo("sro", {"description": _STR, "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP,
                             "count": _integer(0, 999_999_999), "sighting_of_ref": _reference("SDO"),
                             "observed_data_refs": _list_of(_reference("observed-data")),
                             "where_sighted_refs": _list_of(_reference("identity", "location")),
                             "summary": _BOOL}, ("sighting_of_ref",), _SEEN),
    "marking-definition": _Spec("marking", {
        **_HEADER, "created_by_ref": _reference("identity"), "created": _TIMESTAMP, "definition_type": _STR,
        "name": _STR, "definition": None, "external_references": _EXTERNAL_REFERENCES,
        "object_marking_refs": _MARKING_REFS, "granular_markings": _GRANULAR_MARKINGS,
        "extensions": _extensions(None)},
        ("type", "spec_version", "id", "created"), (_marking_definition_rule,)),
    "language-content": _sdo("meta", {
        "object_ref": _reference("SCO", "SDO", "SRO"), "object_modified": _TIMESTAMP,
        "contents": _DICT}, ("object_ref", "contents")),
    "extension-definition": _sdo("meta", {
        "created_by_ref": _reference("identity"), "name": _STR, "description": _STR, "schema": _STR,
        "version": _STR, "extension_types": _list_of(_enum(*sorted(_EXTENSION_TYPES))),
        "extension_properties": _STR_LIST},
        ("created_by_ref", "name", "schema", "version", "extension_types")),
    "artifact": _sco("artifact", {"mime_type": _STR, "payload_bin": _check_binary, "url": _STR,
                                  "hashes": _HASHES,
                                  "encryption_algorithm": _enum("AES-256-GCM", "ChaCha20-Poly1305",
                                                                "mime-type-indicated"),
                                  "decryption_key": _STR}, (), _artifact_rule),
    "autonomous-system": _sco("autonomous-system", {"number": _INT, "name": _STR, "rir": _STR}, ("number",)),
    "directory": _sco("directory", {"path": _STR, "path_enc": _STR, "ctime": _TIMESTAMP, "mtime": _TIMESTAMP,
                                    "atime": _TIMESTAMP,
                                    "contains_refs": _list_of(_reference("file", "directory"))},
                      ("path",)),
    "domain-name": _sco("domain-name", {"value": _STR, "resolves_to_refs": _list_of(
        _reference("ipv4-addr", "ipv6-addr", "domain-name"))}, ("value",)),
    "email-addr": _sco("email-addr", {"value": _STR, "display_name": _STR,
                                      "belongs_to_ref": _reference("user-account")}, ("value",)),
    "email-message": _sco("email-message", {
        "is_multipart": _BOOL, "date": _TIMESTAMP, "content_type": _STR, "from_ref": _reference("email-addr"),
        "sender_ref": _reference("email-addr"), "to_refs": _list_of(_reference("email-addr")),
        "cc_refs": _list_of(_reference("email-addr")), "bcc_refs": _list_of(_reference("email-addr")),
        "message_id": _STR, "subject": _STR, "received_lines": _STR_LIST, "additional_header_fields": _DICT,
        "body": _STR, "raw_email_ref": _reference("artifact"),
        "body_multipart": _list_of(_object({"body": _STR, "body_raw_ref": _reference("artifact", "file"),
                                            "content_type": _STR, "content_disposition": _STR},
                                           one_of=("body", "body_raw_ref")))},
        ("is_multipart",), _email_message_rule),
    "file": _sco("file", {"hashes": _HASHES, "size": _UINT, "name": _STR, "name_enc": _STR,
                          "magic_number_hex": _check_hex, "mime_type": _STR, "ctime": _TIMESTAMP,
                          "mtime": _TIMESTAMP, "atime": _TIMESTAMP,
                          "parent_directory_ref": _reference("directory"),
                          "contains_refs": _list_of(_reference("SCO")),
                          "content_ref": _reference("artifact")},
                 (), _at_least_one("hashes", "name")),
    "ipv4-addr": _sco("ipv4-addr", _ADDRESS_REFS, ("value",)),
    "ipv6-addr": _sco("ipv6-addr", _ADDRESS_REFS, ("value",)),
    "mac-addr": _sco("mac-addr", {"value": _STR}, ("value",)),
    "mutex": _sco("mutex", {"name": _STR}, ("name",)),
    "network-traffic": _sco("network-traffic", {
        "start": _TIMESTAMP, "end": _TIMESTAMP, "is_active": _BOOL, "src_ref": _TRAFFIC_ENDPOINT,
        "dst_ref": _TRAFFIC_ENDPOINT, "src_port": _integer(0, 65535), "dst_port": _integer(0, 65535),
        "protocols": _STR_LIST, "src_byte_count": _UINT, "dst_byte_count": _UINT, "src_packets": _UINT,
        "dst_packets": _UINT, "ipfix": _DICT, "src_payload_ref": _reference("artifact"),
        "dst_payload_ref": _reference("artifact"),
        "encapsulates_refs": _list_of(_reference("network-traffic")),
        "encapsulated_by_ref": _reference("network-traffic")},
        ("protocols",),
        _at_least_one("src_ref", "dst_ref"), _not_before("end", "start"), _network_traffic_rule),
    "process": _sco("process", {
        "is_hidden": _BOOL, "pid": _INT, "created_time": _TIMESTAMP, "cwd": _STR, "command_line": _STR,
        "environment_variables": _DICT, "opened_connection_refs": _list_of(_reference("network-traffic")),
        "creator_user_ref": _reference("user-account"), "image_ref": _reference("file"),
        "parent_ref": _reference("process"), "child_refs": _list_of(_reference("process"))},
        (), _at_least_one(*_PROCESS_OWN)),
    "software": _sco("software", {"name": _STR, "cpe": _STR, "swid": _STR, "languages": _STR_LIST,
                                  "vendor": _STR, "version": _STR}, ("name",)),
    "url": _sco("url", {"value": _STR}, ("value",)),
    "user-account": _sco("user-account", {
        "user_id": _STR, "credential": _STR, "account_login": _STR, "account_type": _STR,
        "display_name": _STR, "is_service_account": _BOOL, "is_privileged": _BOOL,
        "can_escalate_privs": _BOOL, "is_disabled": _BOOL,
        "account_created": _TIMESTAMP, "account_expires": _TIMESTAMP, "credential_last_changed": _TIMESTAMP,
        "account_first_login": _TIMESTAMP, "account_last_login": _TIMESTAMP}),
    "windows-registry-key": _sco("windows-registry-key", {
        "key": _STR, "modified_time": _TIMESTAMP, "creator_user_ref": _reference("user-account"),
        "number_of_subkeys": _INT,
        "values": _list_of(_object({"name": _STR, "data": _STR, "data_type": _enum(
            "REG_NONE", "REG_SZ", "REG_EXPAND_SZ", "REG_BINARY", "REG_DWORD", "REG_DWORD_BIG_ENDIAN",
            "REG_DWORD_LITTLE_ENDIAN", "REG_LINK", "REG_MULTI_SZ", "REG_RESOURCE_LIST",
            "REG_FULL_RESOURCE_DESCRIPTION", "REG_RESOURCE_REQUIREMENTS_LIST", "REG_QWORD",
            "REG_INVALID_TYPE")}))}),
    "x509-certificate": _sco("x509-certificate", {
        "is_self_signed": _BOOL, "hashes": _HASHES, "version": _STR, "serial_number": _STR,
        "signature_algorithm": _STR, "issuer": _STR, "validity_not_before": _TIMESTAMP,
        "validity_not_after": _TIMESTAMP, "subject": _STR, "subject_public_key_algorithm": _STR,
        "subject_public_key_modulus": _STR, "subject_public_key_exponent": _INT,
        "x509_v3_extensions": _object({
            **{name: _STR for name in (
                "basic_constraints name_constraints policy_constraints key_usage extended_key_usage "
                "subject_key_identifier authority_key_identifier subject_alternative_name "
                "issuer_alternative_name subject_directory_attributes crl_distribution_points "
                "inhibit_any_policy certificate_policies policy_mappings").split()},
            "private_key_usage_period_not_before": _TIMESTAMP,
            "private_key_usage_period_not_after": _TIMESTAMP})},
        (), _at_least_one(*_X509_OWN)),
}  # fmt: skip

# Objects of an unregistered (custom) type: the shared properties keep their STIX meaning.
_CUSTOM_SPEC = _Spec("custom", {**_SDO_COMMON, "defanged": _BOOL}, ("type", "id"), _VERSIONED)
