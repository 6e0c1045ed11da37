"""ACS 3.0 data markings (the ISA Access Control Specification, as CISA's AIS marks STIX 2.1 content).

Pure functions over plain values, like :mod:`hub.policy`, which applies them on top of TLP and the
hub's own sharing markings. An ACS marking is a ``marking-definition`` carrying the property
extension ``ACS_EXTENSION_ID``; :func:`errors` validates it, :func:`parse` reads the parts the hub
enforces into ``AcsRules``, and :func:`denials` says, with reasons, why a recipient may not receive
an object that carries it (an empty list: it may).

What is enforced, for a partner other than the originator:

- ``control_set``: ``classification`` must be ``U`` (checked on write: the hub holds no classified
  data); ``permitted_nationalities``, ``permitted_organizations``, ``shareability`` and ``entity``
  limit who may receive the object; ``formal_determination`` ``NF`` (no foreign nationals) limits it to
  nationality ``USA``; ``sci_controls`` and ``logical_authority_category`` cannot be evaluated here, so
  such a marking admits no one but the originator (fails closed).
- ``access_privilege``: receiving an object through the hub is using it, so the access actions
  (``ACCESS_ACTIONS``: display, the cybersecurity uses of CISA 2015, network defence) that the
  marking names must each be permitted to the partner: by a ``permit`` privilege whose scope covers
  it, or by ``privdefault=permit``, and never covered by a ``deny`` of the same action. A marking that
  names no access action admits by ``privdefault`` alone. Actions about what a recipient does later
  (``IDSRC``, ``TENOT``, ``LEGAL``, ``INTEL``, ``TEARLINE``, ``OPACTION``, ``REQUEST``) and
  ``ANONYMOUSACCESS`` (the hub serves no anonymous client) are kept, not enforced.
- ``further_sharing``: governs redistribution beyond the direct recipients, so it applies to peer
  hubs (federation): a peer receives the object only when a ``permit`` scope admits it (or
  ``sharedefault=permit`` and no ``deny`` scope admits it).

A scope lists ``ALL`` or values: a nationality is the ISO 3166-1 alpha-3 code of the partner's
country; an organisation token matches itself and the tokens below it (``USA.DHS`` admits
``USA.DHS.CISA``); shareability and entity categories match when the partner has one of them. A
dimension a scope does not list does not limit it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pycountry

ACS_EXTENSION_ID = "extension-definition--3a65884d-005a-4290-8335-cb2d778a83ce"

CLASSIFICATIONS = ("U", "C", "S", "TS")
RULE_EFFECTS = ("permit", "deny")
ACCESS_ACTIONS = frozenset({"DSPLY", "CISAUSES", "NETDEF"})
SHAREABILITY = frozenset({"NCC", "EM", "LE", "IC"})
ENTITIES = frozenset({"MIL", "MII", "GOV", "CTR", "SVR", "SVC", "DEV", "NET"})
FORMAL_DETERMINATIONS = frozenset(
    {"AIS", "FOUO", "NF", "PII-NECESSARY-TO-UNDERSTAND-THREAT", "PII-NOT-PRESENT", "PUBREL"}
)
CAVEATS = frozenset({"FISA", "POSSIBLEPII", "CISAPROPRIETARY"})
ALL = "ALL"

_POLICY = re.compile(r"urn:isa:policy:acs:ns:v3\.0\?privdefault=(permit|deny)&(?:amp;)?sharedefault=(permit|deny)")
_URN = re.compile(r"^urn(:[\w.\-]+)+")
_NATIONALITY = re.compile(r"^[A-Z]{3}$")
_ORGANISATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass(frozen=True)
class Scope:
    """Who a privilege, or the control set, covers; ``None`` on a dimension: not limited by it."""

    nationalities: frozenset[str] | None = None
    organizations: frozenset[str] | None = None
    shareability: frozenset[str] | None = None
    entity: frozenset[str] | None = None


@dataclass(frozen=True)
class Privilege:
    action: str
    permit: bool
    scope: Scope


@dataclass(frozen=True)
class FurtherSharing:
    scope: frozenset[str]
    permit: bool


@dataclass(frozen=True)
class AcsRules:
    """The enforced part of one ACS marking (the rest stays in the stored object, byte for byte)."""

    privdefault_permit: bool
    sharedefault_permit: bool
    control: Scope = Scope()
    no_foreign: bool = False
    privileges: tuple[Privilege, ...] = ()
    further: tuple[FurtherSharing, ...] = ()
    custodian: str = ""
    unevaluable: str = ""  # why the hub cannot evaluate it: it then admits no one but the originator
    summary: str = ""


@dataclass(frozen=True)
class Recipient:
    """What the ACS rules know about a partner."""

    slug: str
    nationality: str = ""
    organization: str = ""
    shareability: frozenset[str] = frozenset()
    entity: frozenset[str] = frozenset()
    peer: bool = False


@functools.lru_cache(maxsize=512)
def nationality(country: str) -> str:
    """The ISO 3166-1 alpha-3 code of an alpha-2 country code (``TH`` -> ``THA``); '' when unknown."""
    found = pycountry.countries.get(alpha_2=country.upper()) if len(country) == 2 else None
    return found.alpha_3 if found is not None else ""


# --------------------------------------------------------------------- validation


def errors(ext: Any) -> list[str]:
    """What is wrong with an ACS 3.0 extension (required properties, types, vocabularies); [] if nothing."""
    if not isinstance(ext, dict):
        return ["the ACS extension must be a JSON object"]
    out: list[str] = []
    if ext.get("extension_type") != "property-extension":
        out.append("extension_type must be 'property-extension'")
    for name in ("identifier", "responsible_entity_custodian", "policy_reference"):
        if not isinstance(ext.get(name), str) or not ext[name]:
            out.append(f"property '{name}' is required (a string)")
    if not isinstance(ext.get("create_date_time"), str) or not _TIMESTAMP.match(ext["create_date_time"]):
        out.append("property 'create_date_time' is required (a STIX timestamp)")
    if isinstance(ext.get("policy_reference"), str) and not _POLICY.search(ext["policy_reference"]):
        out.append(
            "policy_reference must include "
            "urn:isa:policy:acs:ns:v3.0?privdefault=(permit|deny)&sharedefault=(permit|deny)"
        )
    authority = ext.get("authority_reference")
    if authority is not None:
        values = authority if isinstance(authority, list) else [authority]
        if not all(isinstance(v, str) and _URN.match(v) for v in values):
            out.append("authority_reference must be URNs (urn:...)")
    out += _control_set_errors(ext.get("control_set"))
    out += _privilege_errors(ext.get("access_privilege", []))
    out += _further_sharing_errors(ext.get("further_sharing", []))
    return out


def classification_refusal(ext: Any) -> str | None:
    """Why an ACS marking may not be stored at all: a classification other than U; None if it may."""
    control = ext.get("control_set") if isinstance(ext, dict) else None
    level = control.get("classification") if isinstance(control, dict) else None
    if level in CLASSIFICATIONS and level != "U":
        return f"ACS classification {level} is refused: this hub holds unclassified (U) data only"
    return None


def _control_set_errors(control: Any) -> list[str]:
    if not isinstance(control, dict):
        return ["property 'control_set' is required (an object with a classification)"]
    out = []
    if control.get("classification") not in CLASSIFICATIONS:
        out.append(f"control_set.classification must be one of {', '.join(CLASSIFICATIONS)}")
    out += _scope_errors("control_set", control)
    for name, vocabulary in (("formal_determination", FORMAL_DETERMINATIONS), ("caveat", CAVEATS)):
        out += _list_errors(f"control_set.{name}", control.get(name), vocabulary)
    for name in ("sci_controls", "logical_authority_category", "sensitivity"):
        out += _list_errors(f"control_set.{name}", control.get(name), None)
    return out


def _privilege_errors(privileges: Any) -> list[str]:
    if not isinstance(privileges, list):
        return ["access_privilege must be a list"]
    out = []
    for i, p in enumerate(privileges):
        where = f"access_privilege[{i}]"
        if not isinstance(p, dict):
            out.append(f"{where} must be an object")
            continue
        if not isinstance(p.get("privilege_action"), str) or not p["privilege_action"]:
            out.append(f"{where}.privilege_action is required (a string)")
        if p.get("rule_effect") not in RULE_EFFECTS:
            out.append(f"{where}.rule_effect must be 'permit' or 'deny'")
        scope = p.get("privilege_scope", {})
        if not isinstance(scope, dict):
            out.append(f"{where}.privilege_scope must be an object")
        else:
            out += _scope_errors(f"{where}.privilege_scope", scope)
    return out


def _further_sharing_errors(entries: Any) -> list[str]:
    if not isinstance(entries, list):
        return ["further_sharing must be a list"]
    out = []
    for i, fs in enumerate(entries):
        where = f"further_sharing[{i}]"
        if not isinstance(fs, dict):
            out.append(f"{where} must be an object")
            continue
        scope = fs.get("sharing_scope")
        values = [scope] if isinstance(scope, str) else scope
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            out.append(f"{where}.sharing_scope is required (a list of organisation tokens)")
        if fs.get("rule_effect") not in RULE_EFFECTS:
            out.append(f"{where}.rule_effect must be 'permit' or 'deny'")
    return out


def _scope_errors(where: str, scope: dict) -> list[str]:
    out = _list_errors(f"{where}.permitted_nationalities", scope.get("permitted_nationalities"), None, _NATIONALITY)
    out += _list_errors(f"{where}.permitted_organizations", scope.get("permitted_organizations"), None, _ORGANISATION)
    out += _list_errors(f"{where}.shareability", scope.get("shareability"), SHAREABILITY)
    out += _list_errors(f"{where}.entity", scope.get("entity"), ENTITIES)
    return out


def _list_errors(
    where: str, values: Any, vocabulary: frozenset[str] | None, pattern: re.Pattern[str] | None = None
) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return [f"{where} must be a list of strings"]
    bad = [
        v
        for v in values
        if v != ALL
        and ((vocabulary is not None and v not in vocabulary) or (pattern is not None and not pattern.match(v)))
    ]
    if bad:
        allowed = ", ".join(sorted(vocabulary)) if vocabulary is not None else "see the ACS 3.0 vocabularies"
        return [f"{where}: {', '.join(map(repr, bad))} not allowed ({allowed}, or ALL)"]
    return []


# --------------------------------------------------------------------- parsing


def parse(ext: dict) -> AcsRules:
    """Read the enforced part of a valid ACS extension (see :func:`errors`)."""
    found = _POLICY.search(ext.get("policy_reference", ""))
    privdefault, sharedefault = found.groups() if found else ("deny", "deny")
    control = ext.get("control_set") or {}
    unevaluable = [name for name in ("sci_controls", "logical_authority_category") if control.get(name)]
    return AcsRules(
        privdefault_permit=privdefault == "permit",
        sharedefault_permit=sharedefault == "permit",
        control=_scope(control),
        no_foreign="NF" in (control.get("formal_determination") or ()),
        privileges=tuple(
            Privilege(p["privilege_action"], p["rule_effect"] == "permit", _scope(p.get("privilege_scope") or {}))
            for p in ext.get("access_privilege") or ()
        ),
        further=tuple(
            FurtherSharing(frozenset(_as_list(fs["sharing_scope"])), fs["rule_effect"] == "permit")
            for fs in ext.get("further_sharing") or ()
        ),
        custodian=ext.get("responsible_entity_custodian", ""),
        unevaluable=f"{' and '.join(unevaluable)} cannot be evaluated by this hub" if unevaluable else "",
        summary=summary(ext),
    )


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _scope(values: dict) -> Scope:
    def dimension(name: str) -> frozenset[str] | None:
        listed = values.get(name)
        return frozenset(listed) if isinstance(listed, list) and listed else None

    return Scope(
        nationalities=dimension("permitted_nationalities"),
        organizations=dimension("permitted_organizations"),
        shareability=dimension("shareability"),
        entity=dimension("entity"),
    )


def summary(ext: dict) -> str:
    """A one-line summary a SIEM can filter on: classification, determinations, who may use it, further sharing.

    For example ``U; FD=FOUO,AIS; CISAUSES=permit:ALL; FS=permit:USA.USG; privdefault=deny; sharedefault=deny``.
    """
    control = ext.get("control_set") or {}
    parts = [str(control.get("classification", "?"))]
    if control.get("formal_determination"):
        parts.append("FD=" + ",".join(control["formal_determination"]))
    for p in ext.get("access_privilege") or ():
        scope = p.get("privilege_scope") or {}
        who = ",".join(scope.get("permitted_nationalities") or scope.get("permitted_organizations") or [ALL])
        parts.append(f"{p.get('privilege_action')}={p.get('rule_effect')}:{who}")
    for fs in ext.get("further_sharing") or ():
        parts.append(f"FS={fs.get('rule_effect')}:{','.join(_as_list(fs.get('sharing_scope') or []))}")
    found = _POLICY.search(ext.get("policy_reference", ""))
    if found:
        parts += [f"privdefault={found.group(1)}", f"sharedefault={found.group(2)}"]
    return "; ".join(parts)


def further_sharing_scope(rules: AcsRules) -> str:
    """The organisations and scopes a marking permits further sharing to ('' when none)."""
    return ",".join(sorted({s for fs in rules.further if fs.permit for s in fs.scope}))


# --------------------------------------------------------------------- evaluation


def denials(rules: AcsRules, who: Recipient) -> list[str]:
    """Every reason the ACS marking refuses ``who`` (not its originator); [] when it admits it."""
    if rules.unevaluable:
        return [f"ACS: {rules.unevaluable} (fails closed)"]
    out = [f"ACS: {reason} not permitted" for reason in _misses(rules.control, who)]
    if rules.no_foreign and who.nationality != "USA":
        out.append(f"ACS: NF (no foreign nationals) and nationality {who.nationality or 'unknown'} not permitted")
    out += _privilege_denials(rules, who)
    if who.peer:
        out += _further_denials(rules, who)
    return out


def _privilege_denials(rules: AcsRules, who: Recipient) -> list[str]:
    named = sorted({p.action for p in rules.privileges if p.action in ACCESS_ACTIONS})
    if not named:
        if rules.privdefault_permit:
            return []
        return [f"ACS: privdefault=deny and no access privilege ({', '.join(sorted(ACCESS_ACTIONS))}) permits it"]
    out = []
    for action in named:
        mine = [p for p in rules.privileges if p.action == action]
        if any(not p.permit and not _misses(p.scope, who) for p in mine):
            out.append(f"ACS: {action} denied to {who.slug}")
            continue
        permits = [p for p in mine if p.permit]
        if rules.privdefault_permit or any(not _misses(p.scope, who) for p in permits):
            continue
        misses = _misses(permits[0].scope, who) if permits else []
        out.append(f"ACS: {misses[0]} not permitted for {action}" if misses else f"ACS: {action} not permitted")
    return out


def _further_denials(rules: AcsRules, who: Recipient) -> list[str]:
    matching = [fs for fs in rules.further if _sharing_scope_admits(fs.scope, who, rules.custodian)]
    if any(not fs.permit for fs in matching):
        return [f"ACS: further sharing to peer hub {who.slug} is denied"]
    if any(fs.permit for fs in matching) or rules.sharedefault_permit:
        return []
    return [f"ACS: no further_sharing scope admits peer hub {who.slug} (sharedefault=deny or not in scope)"]


def _misses(scope: Scope, who: Recipient) -> list[str]:
    """The dimensions of ``scope`` that do not cover ``who``, as reason fragments."""
    out = []
    if scope.nationalities is not None and not _covers(scope.nationalities, [who.nationality]):
        out.append(f"nationality {who.nationality or 'unknown'}")
    if scope.organizations is not None and not _org_covered(scope.organizations, who.organization):
        out.append(f"organization {who.organization or 'none'}")
    if scope.shareability is not None and not _covers(scope.shareability, who.shareability):
        out.append(f"shareability {','.join(sorted(who.shareability)) or 'none'}")
    if scope.entity is not None and not _covers(scope.entity, who.entity):
        out.append(f"entity {','.join(sorted(who.entity)) or 'none'}")
    return out


def _covers(listed: frozenset[str], values: Iterable[str]) -> bool:
    return ALL in listed or any(v and v in listed for v in values)


def _org_covered(listed: Iterable[str], organization: str) -> bool:
    return any(t == ALL or (organization and (organization == t or organization.startswith(t + "."))) for t in listed)


def _sharing_scope_admits(scope: frozenset[str], who: Recipient, custodian: str) -> bool:
    if _org_covered(scope, who.organization):
        return True
    home = custodian.split(".", 1)[0]
    return "FOREIGNGOV" in scope and bool(who.nationality) and who.nationality != home
