"""TLP marking definitions: the standard objects, the ids the hub maps to levels, and markings
that state a TLP under their own id (spec/sharing-and-siem.md a1-a3)."""

from __future__ import annotations

import re

from hub.policy import TLP

_TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

TLP2_EXTENSION_DEFINITION: dict = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": _TLP2_EXTENSION_ID,
    "name": "TLP 2.0",
    "description": "This defines TLP 2.0 as a STIX extension",
    "created": "2022-10-01T00:00:00.000Z",
    "modified": "2022-10-01T00:00:00.000Z",
    "created_by_ref": "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01",
    "schema": "https://github.com/oasis-open/cti-stix-common-objects/tree/master/"
    "extension-definition-specifications/tlp-2.0",
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}


def _tlp2_marking(uuid: str, name: str, value: str) -> dict:
    """Build one OASIS TLP 2.0 marking-definition object."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--" + uuid,
        "created": "2022-10-01T00:00:00.000Z",
        "name": name,
        "extensions": {_TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": value}},
    }


def _tlp1_marking(uuid: str, colour: str) -> dict:
    """Build one STIX 2.1 built-in (TLP 1.0) marking-definition object."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--" + uuid,
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": "TLP:" + colour.upper(),
        "definition": {"tlp": colour},
    }


TLP2_MARKINGS: dict[TLP, dict] = {
    TLP.CLEAR: _tlp2_marking("94868c89-83c2-464b-929b-a1a8aa3c8487", "TLP:CLEAR", "clear"),
    TLP.GREEN: _tlp2_marking("bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "TLP:GREEN", "green"),
    TLP.AMBER: _tlp2_marking("55d920b0-5e8b-4f79-9ee9-91f868d9b421", "TLP:AMBER", "amber"),
    TLP.AMBER_STRICT: _tlp2_marking("939a9414-2ddd-4d32-a0cd-375ea402b003", "TLP:AMBER+STRICT", "amber+strict"),
    TLP.RED: _tlp2_marking("e828b379-4e03-4974-9ac4-e53a884c97c1", "TLP:RED", "red"),
}

_TLP1_LEVELS = {"white": TLP.CLEAR, "green": TLP.GREEN, "amber": TLP.AMBER, "red": TLP.RED}

TLP1_MARKINGS: dict[str, dict] = {
    m["id"]: m
    for m in (
        _tlp1_marking("613f2e26-407d-48c7-9eca-b8e91df99dc9", "white"),
        _tlp1_marking("34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"),
        _tlp1_marking("f88d31f6-486f-44da-b317-01333bde0b82", "amber"),
        _tlp1_marking("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red"),
    )
}

_OPENCTI_AMBER_STRICT_ID = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"

TLP_MARKING_IDS: dict[str, TLP] = {
    **{m["id"]: level for level, m in TLP2_MARKINGS.items()},
    **{mid: _TLP1_LEVELS[m["definition"]["tlp"]] for mid, m in TLP1_MARKINGS.items()},
    _OPENCTI_AMBER_STRICT_ID: TLP.AMBER_STRICT,
}

_TLP2_BY_ID = {m["id"]: m for m in TLP2_MARKINGS.values()}


def marking_tlp(marking_ref: str) -> TLP | None:
    """Return the TLP level of a marking-definition id, or None if it is not a TLP id."""
    return TLP_MARKING_IDS.get(marking_ref) if isinstance(marking_ref, str) else None


_TLP2_VALUES = {
    "clear": TLP.CLEAR,
    "green": TLP.GREEN,
    "amber": TLP.AMBER,
    "amber+strict": TLP.AMBER_STRICT,
    "red": TLP.RED,
}
# "TLP:RED", "tlp: amber+strict", "TLP-WHITE", "TLP AMBER", as OpenCTI, MISP and people write them.
_STATED_TLP = re.compile(r"\bTLP\s*[:\-]?\s*(CLEAR|WHITE|GREEN|AMBER\s*\+\s*STRICT|AMBER|RED)\b", re.IGNORECASE)
_STATED_LEVELS = {
    "clear": TLP.CLEAR,
    "white": TLP.CLEAR,
    "green": TLP.GREEN,
    "amber": TLP.AMBER,
    "amber+strict": TLP.AMBER_STRICT,
    "red": TLP.RED,
}


def stated_tlp(obj: dict) -> TLP | None:
    """The TLP level a marking-definition under a non-standard id states, if it states one; else None.

    A TLP is stated by the TLP 2.0 extension (``tlp_2_0``), or in the text of its ``name`` or
    ``statement`` (``"TLP:RED"``, the shape OpenCTI exports). Where several levels are stated, the
    strictest counts: a marking that says RED anywhere is never served as less.
    """
    if not isinstance(obj, dict) or obj.get("type") != "marking-definition":
        return None
    levels: list[TLP] = []
    ext = (obj.get("extensions") or {}).get(_TLP2_EXTENSION_ID)
    if isinstance(ext, dict) and isinstance(ext.get("tlp_2_0"), str):
        level = _TLP2_VALUES.get(ext["tlp_2_0"].strip().lower())
        levels.append(TLP.RED if level is None else level)  # an unknown TLP 2.0 value fails closed
    definition = obj.get("definition")
    texts = [obj.get("name"), definition.get("statement") if isinstance(definition, dict) else None]
    for text in texts:
        if isinstance(text, str):
            for found in _STATED_TLP.finditer(text):
                levels.append(_STATED_LEVELS["".join(found.group(1).lower().split())])
    return max(levels) if levels else None


def is_statement_marking(obj: dict) -> bool:
    """Tell whether ``obj`` is a statement marking (copyright, terms of use) and not a TLP one."""
    if not isinstance(obj, dict) or obj.get("type") != "marking-definition":
        return False
    if marking_tlp(obj.get("id", "")) is not None or stated_tlp(obj) is not None:
        # OpenCTI exports TLP:AMBER+STRICT and custom TLP levels as statements; the hub understands them as TLP.
        return False
    definition = obj.get("definition")
    return (
        obj.get("definition_type") == "statement"
        and isinstance(definition, dict)
        and isinstance(definition.get("statement"), str)
    )
