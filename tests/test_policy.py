"""The sharing rules (DESIGN.md, "The sharing model") as truth tables over the pure policy module."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import policy
from hub.policy import TLP, Collection, Grants, ObjectFacts, Partner, SharingMarking, TrustGroup, World

# --------------------------------------------------------------------- a small world

WORLD = World(
    {
        "rokus": TrustGroup("rokus", members=frozenset({"krcert", "cisa"})),
        "asean": TrustGroup("asean", countries=frozenset({"SG", "MY", "TH"})),
    }
)

PARTNERS = {
    "krcert": Partner(1, "krcert", "KR", TLP.RED),
    "cisa": Partner(2, "cisa", "US", TLP.RED),
    "singcert": Partner(3, "singcert", "SG", TLP.AMBER),
    "mycert": Partner(4, "mycert", "MY", TLP.GREEN),
    "thaicert": Partner(5, "thaicert", "TH", TLP.RED, active=False),
}


def partner(slug: str = "krcert", **changes) -> Partner:
    base = PARTNERS[slug]
    return Partner(**{**base.__dict__, **changes})


def collection(readers=("*",), writers=("*",), max_tlp=TLP.RED, default_tlp=TLP.GREEN, types=()) -> Collection:
    return Collection(
        id="shared",
        max_tlp=max_tlp,
        default_tlp=default_tlp,
        types=frozenset(types),
        readers=Grants.parse(readers),
        writers=Grants.parse(writers),
    )


def share(*partners: str, groups=(), countries=(), exclude=(), name: str = "m") -> SharingMarking:
    return SharingMarking(
        id=f"marking-definition--{name}",
        partners=frozenset(partners),
        groups=frozenset(groups),
        countries=frozenset(countries),
        exclude_partners=frozenset(exclude),
    )


def obj(
    tlp: TLP = TLP.GREEN,
    *sharing: SharingMarking,
    type: str = "indicator",
    originator: str = "cisa",
    unknown: tuple[str, ...] = (),
) -> ObjectFacts:
    return ObjectFacts(type=type, tlp=tlp, originator=originator, sharing=tuple(sharing), unknown_markings=unknown)


def definition(marking: SharingMarking, tlp: TLP = TLP.GREEN, originator: str = "cisa") -> ObjectFacts:
    """The marking-definition object of a partner's sharing marking."""
    return ObjectFacts(type="marking-definition", tlp=tlp, originator=originator, defines=marking)


def row(case: str, who: Partner, where: Collection, what: ObjectFacts, allowed: bool, reason: str):
    return pytest.param(who, where, what, allowed, reason, id=case)


# --------------------------------------------------------------------- can_read

KR, SG, MY = partner("krcert"), partner("singcert"), partner("mycert")
OPEN = collection()

READ_TABLE = [
    # 1. active partner that reads the collection
    row("suspended partner", partner("thaicert"), OPEN, obj(TLP.CLEAR), False, "suspended"),
    row("suspended even as originator", partner("thaicert"), OPEN, obj(originator="thaicert"), False, "suspended"),
    row("everyone grant", MY, OPEN, obj(), True, "within clearance"),
    row("direct partner grant", KR, collection(readers=["partner:krcert"]), obj(), True, "within clearance"),
    row("bare name is a partner grant", KR, collection(readers=["krcert"]), obj(), True, "within clearance"),
    row(
        "another partner's grant",
        KR,
        collection(readers=["partner:cisa"]),
        obj(),
        False,
        "krcert does not read collection shared",
    ),
    row("group grant, explicit member", KR, collection(readers=["group:rokus"]), obj(), True, "within"),
    row("group grant, not a member", SG, collection(readers=["group:rokus"]), obj(), False, "does not read"),
    row("country-rule group admits by country", SG, collection(readers=["group:asean"]), obj(), True, "within"),
    row(
        "country-rule group excludes other countries",
        KR,
        collection(readers=["group:asean"]),
        obj(),
        False,
        "does not read",
    ),
    row("grant to an unknown group", KR, collection(readers=["group:ghost"]), obj(), False, "does not read"),
    row("nobody reads", KR, collection(readers=[]), obj(), False, "does not read"),
    row(
        "writers are not readers",
        KR,
        collection(readers=["partner:cisa"], writers=["*"]),
        obj(),
        False,
        "does not read",
    ),
    # 2. type allowed in the collection
    row(
        "type not allowed",
        KR,
        collection(types=["indicator"]),
        obj(type="malware"),
        False,
        "type malware is not allowed in collection shared",
    ),
    row("type allowed", KR, collection(types=["indicator", "malware"]), obj(type="malware"), True, "within"),
    # 3. TLP against the collection maximum
    row(
        "TLP above collection max",
        KR,
        collection(max_tlp=TLP.GREEN),
        obj(TLP.AMBER),
        False,
        "TLP:AMBER above collection maximum TLP:GREEN",
    ),
    row("TLP equal to collection max", KR, collection(max_tlp=TLP.AMBER), obj(TLP.AMBER), True, "within"),
    row(
        "AMBER+STRICT above AMBER collection",
        KR,
        collection(max_tlp=TLP.AMBER),
        obj(TLP.AMBER_STRICT),
        False,
        "TLP:AMBER+STRICT above collection maximum TLP:AMBER",
    ),
    row(
        "RED above AMBER+STRICT collection",
        KR,
        collection(max_tlp=TLP.AMBER_STRICT),
        obj(TLP.RED, share("krcert")),
        False,
        "TLP:RED above collection maximum TLP:AMBER+STRICT",
    ),
    # 4. TLP:RED names the partner
    row(
        "RED without any sharing marking",
        KR,
        OPEN,
        obj(TLP.RED),
        False,
        "TLP:RED and krcert is not named in a sharing marking",
    ),
    row("RED naming the partner", KR, OPEN, obj(TLP.RED, share("krcert")), True, "TLP:RED within clearance"),
    row("RED naming someone else", KR, OPEN, obj(TLP.RED, share("cisa")), False, "krcert is not named"),
    row("RED through a group only", KR, OPEN, obj(TLP.RED, share(groups=["rokus"])), False, "is not named"),
    row("RED through a country only", KR, OPEN, obj(TLP.RED, share(countries=["KR"])), False, "is not named"),
    row(
        "RED named, plus an admitting group-only marking",
        KR,
        OPEN,
        obj(TLP.RED, share("krcert", name="a"), share(groups=["rokus"], name="b")),
        True,
        "within clearance",
    ),
    row(
        "RED named, but a group-only marking does not admit",
        KR,
        OPEN,
        obj(TLP.RED, share("krcert", name="a"), share(groups=["asean"], name="b")),
        False,
        "sharing marking marking-definition--b does not admit krcert",
    ),
    row(
        "RED named, but another marking excludes",
        KR,
        OPEN,
        obj(TLP.RED, share("krcert", name="a"), share(groups=["rokus"], exclude=["krcert"], name="b")),
        False,
        "sharing marking marking-definition--b excludes krcert",
    ),
    # 5. sharing markings
    row(
        "marking naming someone else",
        KR,
        OPEN,
        obj(TLP.GREEN, share("cisa")),
        False,
        "sharing marking marking-definition--m does not admit krcert",
    ),
    row("marking naming the partner", KR, OPEN, obj(TLP.GREEN, share("krcert")), True, "every sharing marking"),
    row("marking naming a group of the partner", KR, OPEN, obj(TLP.GREEN, share(groups=["rokus"])), True, "within"),
    row("marking naming a country-rule group", SG, OPEN, obj(TLP.GREEN, share(groups=["asean"])), True, "within"),
    row(
        "marking naming an unknown group",
        KR,
        OPEN,
        obj(TLP.GREEN, share(groups=["ghost"])),
        False,
        "does not admit krcert",
    ),
    row("marking naming the partner's country", KR, OPEN, obj(TLP.GREEN, share(countries=["KR"])), True, "within"),
    row(
        "marking naming other countries",
        KR,
        OPEN,
        obj(TLP.GREEN, share(countries=["US", "SG"])),
        False,
        "does not admit krcert",
    ),
    row("one marking is a union", KR, OPEN, obj(TLP.GREEN, share("cisa", countries=["KR"])), True, "within"),
    row(
        "several markings all admit",
        SG,
        OPEN,
        obj(TLP.GREEN, share(groups=["asean"], name="a"), share("singcert", name="b")),
        True,
        "within",
    ),
    row(
        "several markings, one does not admit",
        MY,
        OPEN,
        obj(TLP.GREEN, share(groups=["asean"], name="a"), share("singcert", name="b")),
        False,
        "marking-definition--b does not admit mycert",
    ),
    row(
        "exclusion beats a named partner",
        KR,
        OPEN,
        obj(TLP.GREEN, share("krcert", exclude=["krcert"])),
        False,
        "sharing marking marking-definition--m excludes krcert",
    ),
    row(
        "exclusion beats a group",
        KR,
        OPEN,
        obj(TLP.GREEN, share(groups=["rokus"], exclude=["krcert"])),
        False,
        "excludes krcert",
    ),
    row(
        "exclusion beats a country",
        SG,
        OPEN,
        obj(TLP.GREEN, share(countries=["SG"], exclude=["singcert"])),
        False,
        "excludes singcert",
    ),
    row(
        "exclusion of someone else", KR, OPEN, obj(TLP.GREEN, share(groups=["rokus"], exclude=["cisa"])), True, "within"
    ),
    # 6. unknown markings fail closed
    row(
        "unknown marking",
        KR,
        OPEN,
        obj(TLP.CLEAR, unknown=("marking-definition--x",)),
        False,
        "unknown marking marking-definition--x (fails closed)",
    ),
    # the originator sees its own objects in collections it reads
    row("originator sees its own RED", KR, OPEN, obj(TLP.RED, originator="krcert"), True, "originator"),
    row(
        "originator sees its own unknown marking",
        KR,
        OPEN,
        obj(TLP.GREEN, originator="krcert", unknown=("marking-definition--x",)),
        True,
        "originator",
    ),
    row("originator beyond its own clearance", MY, OPEN, obj(TLP.AMBER, originator="mycert"), True, "originator"),
    row(
        "originator excluded by its own marking",
        KR,
        OPEN,
        obj(TLP.GREEN, share("cisa", exclude=["krcert"]), originator="krcert"),
        True,
        "originator",
    ),
    row(
        "originator beyond collection max and types",
        KR,
        collection(max_tlp=TLP.CLEAR, types=["malware"]),
        obj(TLP.AMBER, originator="krcert"),
        True,
        "originator",
    ),
    row(
        "originator in a collection it does not read",
        KR,
        collection(readers=["partner:cisa"]),
        obj(TLP.CLEAR, originator="krcert"),
        False,
        "does not read",
    ),
    # 8. a partner's sharing marking goes only to the partners it admits
    row(
        "sharing marking naming someone else",
        KR,
        OPEN,
        definition(share("cisa")),
        False,
        "the definition of sharing marking marking-definition--m goes only to its publisher and the partners "
        "it admits, and it does not admit krcert",
    ),
    row("sharing marking naming the partner", KR, OPEN, definition(share("krcert")), True, "within"),
    row("sharing marking naming a group of the partner", KR, OPEN, definition(share(groups=["rokus"])), True, "within"),
    row("sharing marking naming the partner's country", SG, OPEN, definition(share(countries=["SG"])), True, "within"),
    row(
        "sharing marking excluding the partner",
        SG,
        OPEN,
        definition(share(countries=["SG"], exclude=["singcert"])),
        False,
        "does not admit singcert",
    ),
    row(
        "sharing marking seen by its publisher",
        KR,
        OPEN,
        definition(share("cisa"), originator="krcert"),
        True,
        "originator",
    ),
    row(
        "sharing marking admitting, above clearance",
        MY,
        OPEN,
        definition(share("mycert"), TLP.AMBER),
        False,
        "above partner clearance",
    ),
]


def clearance_rows():
    """Every (object TLP, partner clearance) pair; RED objects name the partner so only clearance decides."""
    for level, clearance in itertools.product(TLP, TLP):
        what = obj(level, share("krcert")) if level is TLP.RED else obj(level)
        allowed = level <= clearance
        denied = f"{level.label} above partner clearance {clearance.label.removeprefix('TLP:')}"
        reason = "within clearance" if allowed else denied
        yield row(
            f"{level.name} object, {clearance.name} clearance",
            partner("krcert", clearance=clearance),
            OPEN,
            what,
            allowed,
            reason,
        )


@pytest.mark.parametrize("who,where,what,allowed,reason", [*READ_TABLE, *clearance_rows()])
def test_can_read(who, where, what, allowed, reason):
    decision = policy.can_read(WORLD, who, where, what)
    assert decision.allowed is allowed and bool(decision) is allowed
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert str(decision).startswith("allowed: " if allowed else "denied: ")


def test_clearance_reason_reads_as_the_design_says():
    decision = policy.can_read(WORLD, MY, OPEN, obj(TLP.AMBER))
    assert str(decision) == "denied: TLP:AMBER above partner clearance GREEN"


def test_every_failing_content_rule_is_listed():
    what = obj(TLP.AMBER, share("cisa"), type="malware", unknown=("marking-definition--x",))
    decision = policy.can_read(WORLD, MY, collection(max_tlp=TLP.GREEN, types=["indicator"]), what)
    assert not decision
    assert len(decision.reasons) == 5, decision.reasons
    text = str(decision)
    parts = ("type malware", "collection maximum", "partner clearance", "does not admit", "unknown marking")
    for part in parts:
        assert part in text


# --------------------------------------------------------------------- TLP levels


def test_tlp_order():
    assert list(TLP) == sorted(TLP)
    assert TLP.CLEAR < TLP.GREEN < TLP.AMBER < TLP.AMBER_STRICT < TLP.RED
    labels = ["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED"]
    assert [level.label for level in TLP] == labels


@pytest.mark.parametrize(
    "text,level",
    [
        ("CLEAR", TLP.CLEAR),
        ("clear", TLP.CLEAR),
        ("WHITE", TLP.CLEAR),
        ("TLP:WHITE", TLP.CLEAR),
        ("tlp:white", TLP.CLEAR),
        ("green", TLP.GREEN),
        (" Green ", TLP.GREEN),
        ("TLP:AMBER", TLP.AMBER),
        ("amber+strict", TLP.AMBER_STRICT),
        ("TLP:AMBER+STRICT", TLP.AMBER_STRICT),
        ("TLP:RED", TLP.RED),
        ("red", TLP.RED),
    ],
)
def test_tlp_parse(text, level):
    assert TLP.parse(text) is level


@pytest.mark.parametrize("label", [level.label for level in TLP])
def test_tlp_parse_reads_its_own_labels(label):
    assert TLP.parse(label).label == label


@pytest.mark.parametrize("text", ["", "purple", "TLP:", "TLP:PURPLE", "AMBER STRICT", "RED+", "4", "tlp red"])
def test_tlp_parse_rejects_unknown_names(text):
    with pytest.raises(ValueError, match="unknown TLP level"):
        TLP.parse(text)


@pytest.mark.parametrize(
    "levels,default,expected",
    [
        ([], TLP.AMBER, TLP.AMBER),
        ([], TLP.CLEAR, TLP.CLEAR),
        ([TLP.GREEN], TLP.AMBER, TLP.GREEN),
        ([TLP.GREEN, TLP.RED], TLP.CLEAR, TLP.RED),
        ([TLP.CLEAR, TLP.AMBER_STRICT, TLP.AMBER], TLP.GREEN, TLP.AMBER_STRICT),
        ([TLP.AMBER, TLP.AMBER], TLP.RED, TLP.AMBER),
    ],
)
def test_effective_tlp_most_restrictive_wins(levels, default, expected):
    assert policy.effective_tlp(levels, default) is expected
    assert policy.effective_tlp(iter(levels), default) is expected


# --------------------------------------------------------------------- can_write


def write_row(
    case: str,
    who: Partner,
    where: Collection,
    what: ObjectFacts,
    allowed: bool,
    reason: str,
    read_only: bool = False,
    owner: str | None = None,
):
    return pytest.param(who, where, what, read_only, owner, allowed, reason, id=case)


MINE = {"originator": "krcert"}

WRITE_TABLE = [
    write_row("happy path", KR, OPEN, obj(**MINE), True, ""),
    write_row("suspended partner", partner("thaicert"), OPEN, obj(originator="thaicert"), False, "suspended"),
    write_row("read-only key", KR, OPEN, obj(**MINE), False, "the API key is read-only", read_only=True),
    write_row(
        "not a writer",
        KR,
        collection(writers=["partner:cisa"]),
        obj(**MINE),
        False,
        "krcert does not write collection shared",
    ),
    write_row("reader but not writer", KR, collection(readers=["*"], writers=[]), obj(**MINE), False, "does not write"),
    write_row("writer through a group", KR, collection(writers=["group:rokus"]), obj(**MINE), True, ""),
    write_row(
        "writer through a country-rule group",
        SG,
        collection(writers=["group:asean"]),
        obj(originator="singcert"),
        True,
        "",
    ),
    write_row("new version by its originator", KR, OPEN, obj(**MINE), True, "", owner="krcert"),
    write_row(
        "new version of another partner's object",
        KR,
        OPEN,
        obj(**MINE),
        False,
        "only the originator may publish under this object id",
        owner="cisa",
    ),
    write_row(
        "type not allowed",
        KR,
        collection(types=["malware"]),
        obj(**MINE),
        False,
        "type indicator is not allowed in collection shared",
    ),
    write_row(
        "TLP above collection max",
        KR,
        collection(max_tlp=TLP.AMBER),
        obj(TLP.AMBER_STRICT, **MINE),
        False,
        "TLP:AMBER+STRICT above collection maximum TLP:AMBER",
    ),
    write_row("TLP equal to collection max", KR, collection(max_tlp=TLP.AMBER), obj(TLP.AMBER, **MINE), True, ""),
    write_row(
        "RED without sharing marking",
        KR,
        OPEN,
        obj(TLP.RED, **MINE),
        False,
        "a TLP:RED object must name its recipients in a sharing marking",
    ),
    write_row(
        "RED shared with a group only",
        KR,
        OPEN,
        obj(TLP.RED, share(groups=["rokus"]), **MINE),
        False,
        "must name its recipients",
    ),
    write_row("RED naming its recipients", KR, OPEN, obj(TLP.RED, share("cisa"), **MINE), True, ""),
    write_row(
        "unknown marking",
        KR,
        OPEN,
        obj(unknown=("marking-definition--x",), **MINE),
        False,
        "unknown marking marking-definition--x",
    ),
]


@pytest.mark.parametrize("who,where,what,read_only,owner,allowed,reason", WRITE_TABLE)
def test_can_write(who, where, what, read_only, owner, allowed, reason):
    decision = policy.can_write(WORLD, who, where, what, read_only_key=read_only, owner=owner)
    assert decision.allowed is allowed and bool(decision) is allowed
    if not allowed:
        assert any(reason in r for r in decision.reasons), decision.reasons
        assert str(decision).startswith("denied: ")


def test_every_failing_write_rule_is_listed():
    what = obj(TLP.RED, type="malware", unknown=("marking-definition--x",), **MINE)
    where = collection(max_tlp=TLP.AMBER, types=["indicator"])
    decision = policy.can_write(WORLD, KR, where, what, owner="cisa")
    assert len(decision.reasons) == 5, decision.reasons


def test_allowed_write_explains_itself():
    decision = policy.can_write(WORLD, KR, OPEN, obj(**MINE))
    assert decision.allowed and str(decision).startswith("allowed: ")


# --------------------------------------------------------------------- compiled filter == can_read

SLUGS = ("krcert", "cisa", "singcert", "mycert")
COUNTRIES = ("KR", "US", "SG", "MY", "VN")
GROUPS = ("rokus", "asean", "five")

tlps = st.sampled_from(list(TLP))
slug_sets = st.frozensets(st.sampled_from(SLUGS), max_size=3)
country_sets = st.frozensets(st.sampled_from(COUNTRIES), max_size=2)
group_sets = st.frozensets(st.sampled_from((*GROUPS, "ghost")), max_size=2)


def mostly(common, *rare):
    """Draw ``common`` about three times in four, else one of ``rare``."""
    return st.sampled_from([common] * (3 * len(rare)) + list(rare))


@st.composite
def worlds(draw) -> World:
    slugs = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=3))
    return World({slug: TrustGroup(slug, draw(slug_sets), draw(country_sets)) for slug in slugs})


partners = st.builds(
    Partner,
    id=st.just(1),
    slug=st.sampled_from(SLUGS),
    country=st.sampled_from((*COUNTRIES, "")),
    clearance=tlps,
    active=mostly(True, False),
    kind=mostly("cert", "hub"),
)
grants = st.builds(Grants, partners=slug_sets, groups=group_sets, everyone=mostly(True, False))
collections = st.builds(
    Collection,
    id=st.just("c"),
    max_tlp=tlps,
    default_tlp=tlps,
    types=mostly(frozenset(), frozenset({"indicator"}), frozenset({"malware"})),
    readers=grants,
    writers=grants,
)


@st.composite
def restriction_sets(draw) -> dict[int, tuple[SharingMarking, ...]]:
    count = draw(st.integers(0, 4))
    out = {}
    for set_id in range(1, count + 1):
        markings = draw(
            st.lists(
                st.builds(
                    SharingMarking,
                    id=st.sampled_from(("m1", "m2", "m3")),
                    partners=slug_sets,
                    groups=group_sets,
                    countries=country_sets,
                    exclude_partners=st.frozensets(st.sampled_from(SLUGS), max_size=1),
                    no_federation=mostly(False, True),
                ),
                min_size=1,
                max_size=3,
            )
        )
        out[set_id] = tuple(markings)
    return out


objects = st.builds(
    ObjectFacts,
    type=st.sampled_from(("indicator", "malware")),
    tlp=tlps,
    originator=mostly("vncert", *SLUGS),
    unknown_markings=mostly((), ("marking-definition--x",)),
)


def assert_filter_agrees(
    world: World, who: Partner, where: Collection, sets: dict, data: st.DataObject, what: ObjectFacts
) -> None:
    set_id = data.draw(st.none() | st.sampled_from(sorted(sets)) if sets else st.none(), label="set_id")
    # Now and then the object is itself the definition of one of the markings (one definition per id).
    definitions = {m.id: m for markings in sets.values() for m in markings}
    defines = data.draw(st.none() | st.sampled_from(sorted(definitions)) if definitions else st.none(), label="defines")
    what = ObjectFacts(
        what.type,
        what.tlp,
        what.originator,
        sets.get(set_id, ()),
        what.unknown_markings,
        defines=definitions.get(defines) if defines else None,
    )
    compiled = policy.compile_read(world, who, where, sets, definitions.values())
    assert policy.filter_admits(compiled, what, set_id) == bool(policy.can_read(world, who, where, what))


@settings(max_examples=300, deadline=None)
@given(world=worlds(), who=partners, where=collections, sets=restriction_sets(), what=objects, data=st.data())
def test_compiled_filter_agrees_with_can_read(world, who, where, sets, what, data):
    assert_filter_agrees(world, who, where, sets, data, what)


@settings(max_examples=300, deadline=None)
@given(
    world=worlds(),
    slug=st.sampled_from(SLUGS),
    country=st.sampled_from(COUNTRIES),
    sets=restriction_sets(),
    tlp=st.sampled_from([TLP.AMBER, TLP.RED]),
    data=st.data(),
)
def test_compiled_filter_agrees_on_sharing_markings(world, slug, country, sets, tlp, data):
    """Cleared partners in an open collection: only the sharing markings and RED decide."""
    who = Partner(1, slug, country, TLP.RED)
    what = ObjectFacts("indicator", tlp, originator="vncert")
    assert_filter_agrees(world, who, collection(), sets, data, what)


# --------------------------------------------------------------------- federation

PEER = Partner(9, "peer-hub", "SG", TLP.RED, kind="hub")
NO_FED = SharingMarking("m-nofed", countries=frozenset({"SG"}), no_federation=True)
ASEAN_SG = SharingMarking("m-sg", countries=frozenset({"SG"}))


@pytest.mark.parametrize(
    "tlp,sharing,allowed,reason",
    [
        (TLP.GREEN, (), True, "within clearance"),
        (TLP.AMBER, (ASEAN_SG,), True, "within clearance"),
        (TLP.AMBER_STRICT, (), False, "TLP:AMBER+STRICT never leaves through federation"),
        (
            TLP.RED,
            (SharingMarking("m-red", partners=frozenset({"peer-hub"})),),
            False,
            "never leaves through federation",
        ),
        (TLP.GREEN, (NO_FED,), False, "forbids federation"),
    ],
)
def test_federation_withholds_strict_red_and_no_federation(tlp, sharing, allowed, reason):
    decision = policy.can_read(World(), PEER, collection(), ObjectFacts("indicator", tlp, "krcert", sharing))
    assert decision.allowed is allowed and reason in str(decision)


@settings(max_examples=300, deadline=None)
@given(world=worlds(), country=st.sampled_from(COUNTRIES), sets=restriction_sets(), tlp=tlps, data=st.data())
def test_compiled_filter_agrees_for_peer_hubs(world, country, sets, tlp, data):
    """A cleared peer hub in an open collection: federation limits, sharing markings and RED decide."""
    who = Partner(1, "vncert", country, TLP.RED, kind="hub")
    assert_filter_agrees(world, who, collection(), sets, data, ObjectFacts("indicator", tlp, originator="krcert"))
