"""The sharing worlds the tests build: partners, trust groups, collections and keys, each kind in one place."""

from __future__ import annotations

from sqlalchemy import select

from hub import ingest, reference, sharing
from hub import models as m
from hub.policy import TLP
from hub.runtime import Hub
from tests import factories as f
from tests import panel

AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
SHARE_CISA = "marking-definition--0c6ee0a2-1a3e-4b0c-9a3e-2f0e1b1f0a01"


def small_world(hub: Hub, *, accounts: bool = False) -> dict:
    """krcert publishes; cisa (RED) and mycert (GREEN) read the shared collection.

    With ``accounts``, the panel's two accounts (alice the admin, audrey the auditor) exist too. The
    shared collection's blocklists list warninglisted values: the tests' indicators use documentation
    ranges (RFC 5737) and names (RFC 2606), which a blocklist otherwise leaves out.
    """
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        root = f.add_root(s, "dprk")
        shared = f.add_collection(s, root, "shared", max_tlp=TLP.RED, allow_warninglisted=True).uuid
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "mycert")}
    if accounts:
        with hub.session() as s:
            panel.add_accounts(s)
    return {"shared": shared, "keys": keys, "url": f"/dprk/collections/{shared}/objects/"}


def panel_world(hub: Hub) -> dict:
    """Partners, groups, collections, objects and two panel accounts."""
    with hub.session() as s:
        f.hub_partner(s)
        krcert = f.add_partner(s, "krcert", "KR", TLP.RED)
        cisa = f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "mmcert", "MM", TLP.GREEN)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        f.add_group(s, "rokus", [krcert, cisa])
        f.add_group(s, "asean", countries=["MM", "SG"])
        root = f.add_root(s, "dprk")
        ids = {
            "shared": f.add_collection(s, root, "shared").uuid,
            "regional": f.add_collection(
                s,
                root,
                "regional",
                max_tlp=TLP.AMBER,
                default_tlp=TLP.AMBER,
                readers=["group:asean", "group:rokus"],
                writers=["group:asean", "group:rokus"],
            ).uuid,
        }
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
        panel.add_accounts(s)
    with hub.session() as s:
        kr = s.execute(select(m.Partner.id).where(m.Partner.slug == "krcert")).scalar_one()
    amber = f.indicator(1, markings=[AMBER])
    green = f.indicator(2, markings=[GREEN])
    red = f.indicator(3, markings=[RED, SHARE_CISA])
    result = ingest.ingest_envelope(hub, kr, ids["regional"], [amber, green])
    assert not result.failures, result.failures
    result = ingest.ingest_envelope(
        hub, kr, ids["shared"], [f.sharing_marking(SHARE_CISA, partners=["cisa"]), red, green]
    )
    assert not result.failures, result.failures
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "mmcert", "singcert")}
    return {"ids": ids, "keys": keys, "amber": amber["id"], "green": green["id"], "red": red["id"]}


def feedback_world(hub: Hub) -> dict:
    """krcert and cisa publish in dprk/shared, everyone reads it; dprk/feedback takes sightings and opinions.

    The panel's two accounts exist. Returns the collections' ids, the partners' pks and the indicators:
    ``kr`` (two of krcert's) and ``cisa`` (one of cisa's), all TLP:GREEN.
    """
    with hub.session() as s:
        f.hub_partner(s)
        pks = {
            slug: f.add_partner(s, slug, country, clearance).id
            for slug, country, clearance in (
                ("krcert", "KR", TLP.RED),
                ("cisa", "US", TLP.RED),
                ("mycert", "MY", TLP.GREEN),
                ("singcert", "SG", TLP.AMBER),
            )
        }
        root = f.add_root(s, "dprk")
        shared = f.add_collection(s, root, "shared", allow_warninglisted=True).uuid
        fb = f.add_collection(
            s, root, "feedback", default_tlp=TLP.AMBER, types=["sighting", "opinion", "note"], feedback=True
        ).uuid
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
        panel.add_accounts(s)
    kr = [f.indicator(n, name=f"Lazarus C2 {n}", markings=[GREEN]) for n in (11, 12)]
    cisa = [f.indicator(13, name="Kimsuky relay", markings=[GREEN])]
    for slug, objects in (("krcert", kr), ("cisa", cisa)):
        result = ingest.ingest_envelope(hub, pks[slug], shared, objects)
        assert not result.failures, result.failures
    return {"shared": shared, "feedback": fb, "pks": pks, "kr": kr, "cisa": cisa}


def taxii_world(hub: Hub) -> dict:
    """Partners, groups and collections for the TAXII endpoint tests; returns collection ids and keys."""
    with hub.session() as s:
        f.hub_partner(s)
        krcert = f.add_partner(s, "krcert", "KR", TLP.RED)
        cisa = f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        f.add_partner(s, "thaicert", "TH", TLP.RED, active=False)
        f.add_group(s, "rokus", [krcert, cisa])
        f.add_group(s, "asean", countries=["SG", "MY", "TH"])
        root = f.add_root(s, "dprk", max_content_length=200_000)
        ids = {
            "shared": f.add_collection(s, root, "shared", max_tlp=TLP.RED).uuid,
            "rokus": f.add_collection(
                s, root, "rokus", max_tlp=TLP.AMBER_STRICT, readers=["group:rokus"], writers=["group:rokus"]
            ).uuid,
            "ind": f.add_collection(s, root, "ind", types=["indicator"], writers=["partner:krcert"]).uuid,
            "wo": f.add_collection(s, root, "wo", readers=["partner:cisa"], writers=["*"]).uuid,
        }
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "singcert", "mycert")}
    return {"ids": ids, "keys": keys}


def feeds_world(hub: Hub) -> Hub:
    """The import connectors' world: krcert (RED) and mycert (GREEN); collections shared, krlist, reference."""
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        root = f.add_root(s, "dprk")
        f.add_collection(s, root, "shared", max_tlp=TLP.RED)
        f.add_collection(s, root, "krlist", readers=["partner:krcert"], writers=["partner:krcert"])
        f.add_collection(
            s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=["partner:hub"], reference=True
        )
        reference.publish_reference(s)
    return hub


# One collection, dprk/intel, that everyone reads and writes, set up through sharing.yaml; its blocklists
# list the documentation-range values of the tests' indicators.
INTEL_URL = "/dprk/collections/intel/objects/"
INTEL_PARTNERS = {"krcert": ("KrCERT/CC", "KR"), "mycert": ("MyCERT", "MY"), "cisa": ("CISA", "US")}


def intel_config(clearances: dict[str, str], max_tlp: str = "RED") -> str:
    """sharing.yaml for the intel world: the given partners (slug: clearance) and dprk/intel up to ``max_tlp``."""
    partners = "".join(
        f'  - {{id: {slug}, name: "{INTEL_PARTNERS[slug][0]}", country: {INTEL_PARTNERS[slug][1]}, '
        f"clearance: {clearance}}}\n"
        for slug, clearance in clearances.items()
    )
    return (
        'hub: {name: "Test hub", contact: "ops@hub.example"}\n'
        f"partners:\n{partners}"
        "trust_groups: []\n"
        "api_roots:\n"
        "  - id: dprk\n"
        '    title: "DPRK"\n'
        "    collections:\n"
        f'      - {{alias: intel, title: "Intel", max_tlp: {max_tlp}, default_tlp: GREEN, readers: ["*"], '
        'writers: ["*"], blocklist_allow_warninglisted: true}\n'
    )


def intel_world(hub: Hub, clearances: dict[str, str], max_tlp: str = "RED") -> list:
    """Apply the intel world's sharing.yaml (again, to change it); returns what sharing.apply reports."""
    with hub.session() as s:
        return sharing.apply(s, sharing.loads(intel_config(clearances, max_tlp)))
