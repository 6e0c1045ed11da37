"""Tests for the sharing configuration file: load, plan, apply and export."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hub import db, models, reference
from hub import sharing as sc
from hub.errors import ConfigError
from hub.ids import SHARING_NAMESPACE
from hub.policy import TLP

DEMO = Path(__file__).resolve().parent.parent / "config" / "sharing.yaml"

# A small configuration whose line numbers the error tests can point at.
BASE = """\
hub: {name: "Test hub", contact: "ops@hub.example"}
partners:
  - {id: krcert, name: "KrCERT/CC", country: KR, sector: national-cert, kind: cert, clearance: RED}
  - {id: cisa, name: "CISA", country: us, kind: government}
  - {id: singcert, name: "SingCERT", country: SG, clearance: AMBER}
  - {id: mycert, name: "MyCERT", country: MY, clearance: GREEN}
trust_groups:
  - {id: asean, name: "ASEAN national CERTs", members: [singcert], countries: [MY, SG, TH]}
  - id: rok-us
    name: "ROK-US"
    members: [krcert, cisa]
api_roots:
  - id: dprk
    title: "DPRK threat intelligence"
    max_content_length: 10485760
    collections:
      - {alias: community, title: "Community", max_tlp: GREEN, default_tlp: GREEN, types: [],
         readers: ["*"], writers: ["group:asean", "partner:cisa"]}
      - alias: restricted
        title: "Restricted"
        max_tlp: AMBER+STRICT
        default_tlp: AMBER
        types: [indicator, malware]
        readers: ["group:rok-us"]
        writers:
          - "group:rok-us"
"""


# --------------------------------------------------------------------- fixtures


@pytest.fixture
def database(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated, empty database on the engine chosen with ``--db`` (see conftest.py)."""
    engine = db.make_engine(database_url)
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[Session]:
    """Record each call of ``reference.publish_reference`` instead of publishing."""
    calls: list[Session] = []
    monkeypatch.setattr(reference, "publish_reference", calls.append)
    return calls


@pytest.fixture
def factory(database: sessionmaker[Session], published: list[Session]) -> sessionmaker[Session]:
    """The test database, with reference publishing recorded rather than run."""
    return database


def write(tmp_path: Path, text: str, name: str = "sharing.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """Return the 1-based line of the ``nth`` line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def apply_file(factory: sessionmaker[Session], path: Path, actor: str = "test") -> list[sc.Change]:
    with db.transaction(factory) as session:
        return sc.apply(session, sc.load(path), actor=actor)


def plan_file(factory: sessionmaker[Session], path: Path) -> list[sc.Change]:
    with db.transaction(factory) as session:
        return sc.plan(session, sc.load(path))


def counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """Row counts of every table apply writes, plus the rules version."""
    with factory() as session:
        out = {
            t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0
            for t in (
                models.Partner,
                models.TrustGroup,
                models.TrustGroupMember,
                models.ApiRoot,
                models.Collection,
                models.AuditEvent,
            )
        }
        state = session.get(models.HubState, 1)
        assert state is not None
        out["rules_version"] = state.rules_version
        return out


# --------------------------------------------------------------------- load


def test_load_demo_configuration() -> None:
    spec = sc.load(DEMO)
    assert spec.hub_name == "Regional DPRK Threat Intelligence Hub"
    slugs = {p.slug for p in spec.partners}
    assert {"cisa", "krcert", "ncsc-kr", "singcert", "mmcert", "vncert"} <= slugs
    assert len(spec.partners) == 13
    assert {p.country for p in spec.partners} == {
        "BN",
        "KH",
        "ID",
        "LA",
        "MY",
        "MM",
        "PH",
        "SG",
        "TH",
        "VN",
        "US",
        "KR",
    }
    assert {p.clearance for p in spec.partners} > {TLP.RED}, "some partners have a lower clearance"
    assert {g.slug for g in spec.groups} == {"asean", "rok-us", "all-partners"}
    (root,) = spec.roots
    levels = {c.alias: c.max_tlp for c in root.collections if not c.feedback}
    assert sorted(levels.values()) == [TLP.GREEN, TLP.AMBER, TLP.AMBER_STRICT]
    assert [(c.alias, c.readers, c.writers) for c in root.collections if c.feedback] == [("feedback", ("*",), ("*",))]
    community = next(c for c in root.collections if c.alias == "community")
    assert (community.false_positive_threshold, community.false_positive_withdraw) == (3, True)
    for c in root.collections:
        assert c.uuid == sc.collection_uuid("dprk", c.alias)
        assert str(uuid.UUID(c.uuid)) == c.uuid


def test_load_normalises_values(tmp_path: Path) -> None:
    spec = sc.load(write(tmp_path, BASE))
    cisa = next(p for p in spec.partners if p.slug == "cisa")
    assert cisa.country == "US"
    assert cisa.clearance is TLP.RED and cisa.active and cisa.kind == "government"
    assert cisa.identity == f"identity--{uuid.uuid5(SHARING_NAMESPACE, 'partner:cisa')}"
    community = spec.roots[0].collections[0]
    assert community.readers == ("*",)
    assert community.writers == ("group:asean", "partner:cisa")
    restricted = spec.roots[0].collections[1]
    assert restricted.max_tlp is TLP.AMBER_STRICT and restricted.types == ("indicator", "malware")


def test_country_no_is_norway_not_false(tmp_path: Path) -> None:
    text = BASE.replace("country: SG", "country: NO")
    spec = sc.load(write(tmp_path, text))
    assert next(p for p in spec.partners if p.slug == "singcert").country == "NO"


def test_explicit_ids_are_kept(tmp_path: Path) -> None:
    collection_id = "5B9F2C8E-1D3A-4E6F-8A7B-9C0D1E2F3A4B"
    identity = "identity--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"
    text = BASE.replace("{alias: community,", f"{{id: {collection_id}, alias: community,")
    text = text.replace("kind: government}", f"kind: government, identity: {identity}}}")
    spec = sc.load(write(tmp_path, text))
    assert spec.roots[0].collections[0].uuid == collection_id.lower()
    assert next(p for p in spec.partners if p.slug == "cisa").identity == identity


# --------------------------------------------------------------------- errors

# (how to break BASE, the text on the line the error must name, what the message must say)
ERRORS = [
    pytest.param(
        ("members: [krcert, cisa]", "members: [krcert, foo]"),
        "members: [krcert, foo]",
        "unknown partner 'foo' in members of trust group rok-us",
        id="unknown-member",
    ),
    pytest.param(
        ('"partner:cisa"]', '"partner:foo"]'),
        "partner:foo",
        "unknown partner 'foo' in writers of collection dprk/community",
        id="unknown-partner-grant",
    ),
    pytest.param(
        ('readers: ["group:rok-us"]', 'readers: ["group:nope"]'),
        "group:nope",
        "unknown trust group 'nope' in readers of collection dprk/restricted",
        id="unknown-group",
    ),
    pytest.param(
        ('readers: ["*"]', 'readers: ["asean"]'),
        'readers: ["asean"]',
        "bad entry 'asean' in readers of collection dprk/community",
        id="bare-grant",
    ),
    pytest.param(
        ("max_tlp: AMBER+STRICT", "max_tlp: PURPLE"),
        "PURPLE",
        "max_tlp of collection dprk/restricted: unknown TLP level 'PURPLE'",
        id="bad-tlp",
    ),
    pytest.param(
        ("clearance: GREEN", "clearance: MAUVE"),
        "MAUVE",
        "clearance of partner mycert: unknown TLP level 'MAUVE'",
        id="bad-clearance",
    ),
    pytest.param(
        ("default_tlp: AMBER\n", "default_tlp: RED\n"),
        "default_tlp: RED",
        "default_tlp RED of collection dprk/restricted is above its max_tlp AMBER+STRICT",
        id="default-above-max",
    ),
    pytest.param(
        ("clearance: AMBER}", "clearance: AMBER, colour: red}"),
        "colour",
        "unknown key 'colour' in partner singcert",
        id="unknown-key-partner",
    ),
    pytest.param(
        ("    max_content_length:", "    max_size: 5\n    max_content_length:"),
        "max_size",
        "unknown key 'max_size' in API root dprk",
        id="unknown-key-root",
    ),
    pytest.param(
        ("api_roots:", "colour: red\napi_roots:"), "colour", "unknown key 'colour' in the file", id="unknown-key-top"
    ),
    pytest.param(("  - id: dprk", "  - id: admin"), "id: admin", "API root id 'admin' is reserved", id="reserved-root"),
    pytest.param(
        ("  - id: dprk", "  - id: taxii2"), "id: taxii2", "API root id 'taxii2' is reserved", id="reserved-root-taxii2"
    ),
    pytest.param(
        ("alias: restricted", "alias: reference"),
        "alias: reference",
        "collection alias 'reference' is reserved",
        id="reserved-alias",
    ),
    pytest.param(
        ('{id: mycert, name: "MyCERT"', '{id: krcert, name: "MyCERT"'),
        'name: "MyCERT"',
        "duplicate partner id 'krcert' (first defined on line 3)",
        id="duplicate-partner",
    ),
    pytest.param(
        ("country: KR", "country: KOR"),
        "KOR",
        "bad country of partner krcert: 'KOR' (use an ISO 3166 alpha-2 code such as KR)",
        id="bad-country",
    ),
    pytest.param(
        ("countries: [MY, SG, TH]", "countries: [MY, S1]"),
        "S1",
        "bad country in trust group asean: 'S1'",
        id="bad-group-country",
    ),
    pytest.param(("{id: krcert,", "{id: KrCERT,"), "KrCERT,", "bad partner id: 'KrCERT'", id="bad-slug"),
    pytest.param(("{id: cisa,", "{id: hub,"), "id: hub,", "partner id 'hub' is reserved", id="hub-slug"),
    pytest.param(("kind: government", "kind: agency"), "agency", "bad kind of partner cisa: 'agency'", id="bad-kind"),
    pytest.param(
        ('    title: "DPRK', '    title: ["DPRK"]\n    description: "DPRK'),
        'title: ["DPRK"]',
        "title of API root dprk must be a single value",
        id="not-a-scalar",
    ),
    pytest.param(
        ("- alias: restricted", "- alias: community"),
        "- alias: community",
        "duplicate collection alias 'community' in API root dprk",
        id="duplicate-alias",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [Indicator]"),
        "Indicator",
        "bad STIX type in collection dprk/restricted: 'Indicator'",
        id="bad-type",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [indicator]\n        blocklist_ipv4_prefix: 0"),
        "blocklist_ipv4_prefix: 0",
        "bad blocklist_ipv4_prefix of collection dprk/restricted: '0' (use a prefix length from 8 to 32;",
        id="blocklist-ipv4-prefix-0",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [indicator]\n        blocklist_ipv6_prefix: 129"),
        "blocklist_ipv6_prefix: 129",
        "bad blocklist_ipv6_prefix of collection dprk/restricted: '129' (use a prefix length from 16 to 128;",
        id="blocklist-ipv6-prefix-129",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [indicator]\n        blocklist_ipv4_prefix: /24"),
        "blocklist_ipv4_prefix: /24",
        "bad blocklist_ipv4_prefix of collection dprk/restricted: '/24'",
        id="blocklist-prefix-not-a-number",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [indicator]\n        blocklist_allow_warninglisted: sometimes"),
        "blocklist_allow_warninglisted: sometimes",
        "blocklist_allow_warninglisted of collection dprk/restricted must be true or false",
        id="blocklist-allow-warninglisted-not-a-flag",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [indicator]\n        false_positive_threshold: -1"),
        "false_positive_threshold: -1",
        "bad false_positive_threshold of collection dprk/restricted: '-1' (use how many distinct partners'",
        id="false-positive-threshold-negative",
    ),
    pytest.param(
        ("types: [indicator, malware]", "types: [indicator]\n        feedback: yes please"),
        "feedback: yes please",
        "feedback of collection dprk/restricted must be true or false",
        id="feedback-not-a-flag",
    ),
    pytest.param(
        (
            '          - "group:rok-us"\n',
            '          - "group:rok-us"\n        feedback: true\n'
            '      - {alias: more, title: More, max_tlp: GREEN, readers: ["*"], writers: ["*"], feedback: true}\n',
        ),
        "- {alias: more",
        "API root dprk already has a feedback collection: an API root has at most one",
        id="second-feedback-collection",
    ),
]


@pytest.mark.parametrize(("edit", "needle", "message"), ERRORS)
def test_errors_name_file_and_line_and_apply_nothing(
    tmp_path: Path, factory: sessionmaker[Session], edit: tuple[str, str], needle: str, message: str
) -> None:
    assert BASE.count(edit[0]) == 1, "the edit must hit exactly one place"
    text = BASE.replace(*edit)
    path = write(tmp_path, text)
    before = counts(factory)
    with pytest.raises(ConfigError) as caught:
        apply_file(factory, path)
    assert f"{path}:{line_of(text, needle)}: {message}" in str(caught.value)
    assert counts(factory) == before


def test_every_error_is_reported_in_file_order(tmp_path: Path) -> None:
    text = BASE.replace("country: KR", "country: KOR").replace("max_tlp: GREEN", "max_tlp: PURPLE")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        sc.load(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:{line_of(text, 'KOR')}: ")
    assert lines[1].startswith(f"{path}:{line_of(text, 'PURPLE')}: ")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = BASE.replace('title: "Restricted"', 'title: "Restricted')
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: "):
        sc.load(path)


def test_an_unclosed_quote_is_reported_at_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'hub:\n  name: "unclosed\n  contact: ops@example.org\npartners: []\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2: while scanning a quoted scalar, column 9: "):
        sc.load(path)


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read sharing configuration"):
        sc.load(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="empty"):
        sc.load(write(tmp_path, "# nothing\n"))


def test_missing_required_key(tmp_path: Path) -> None:
    text = BASE.replace('name: "SingCERT", ', "")
    path = write(tmp_path, text)
    with pytest.raises(
        ConfigError,
        match=rf"{path}:{line_of(text, 'singcert')}: partner singcert lacks "
        "the required key 'name'",
    ):
        sc.load(path)


# --------------------------------------------------------------------- apply and plan


def test_apply_then_plan_is_empty(tmp_path: Path, factory: sessionmaker[Session], published: list[Session]) -> None:
    changes = apply_file(factory, DEMO, actor="demo")
    krcert = "+ partner krcert (Korea Internet Security Center (KrCERT/CC), KR, clearance RED)"
    assert krcert in [str(c) for c in changes]
    assert "+ trust group asean" in {f"{c.kind == 'add' and '+'} {c.what}" for c in changes}
    assert plan_file(factory, DEMO) == []
    before = counts(factory)
    assert apply_file(factory, DEMO) == []
    assert counts(factory) == before, "a second apply writes nothing, not even audit events"
    assert len(published) == 2, "publish_reference runs at the end of every apply"
    with factory() as session:
        events = session.scalars(select(models.AuditEvent).order_by(models.AuditEvent.id)).all()
        assert [e.target for e in events] == [c.what for c in changes]
        assert {e.actor for e in events} == {"demo"} and {e.action for e in events} == {"sharing.apply"}
        assert orjson.loads(events[0].detail) == {"change": str(changes[0])}
        state = session.get(models.HubState, 1)
        assert state is not None and state.rules_version == 2, "bumped exactly once"


def test_apply_writes_the_model(factory: sessionmaker[Session]) -> None:
    apply_file(factory, DEMO)
    with factory() as session:
        state = session.get(models.HubState, 1)
        assert state is not None
        assert state.name == "Regional DPRK Threat Intelligence Hub"
        assert state.identity_id == f"identity--{uuid.uuid5(SHARING_NAMESPACE, 'hub')}"
        hub = session.scalars(select(models.Partner).where(models.Partner.slug == "hub")).one()
        assert (hub.kind, hub.name, hub.country, hub.clearance, hub.active, hub.identity_id) == (
            "hub",
            state.name,
            "",
            int(TLP.RED),
            True,
            state.identity_id,
        )
        mmcert = session.scalars(select(models.Partner).where(models.Partner.slug == "mmcert")).one()
        assert mmcert.clearance == int(TLP.GREEN) and mmcert.created_us > 0
        asean = session.scalars(select(models.TrustGroup).where(models.TrustGroup.slug == "asean")).one()
        assert asean.countries == "BN,ID,KH,LA,MM,MY,PH,SG,TH,VN"
        assert asean.marking_id == f"marking-definition--{uuid.uuid5(SHARING_NAMESPACE, 'group:asean')}"
        rok_us = session.scalars(select(models.TrustGroup).where(models.TrustGroup.slug == "rok-us")).one()
        member_ids = session.scalars(
            select(models.TrustGroupMember.partner_id).where(models.TrustGroupMember.group_id == rok_us.id)
        ).all()
        slugs = session.scalars(select(models.Partner.slug).where(models.Partner.id.in_(member_ids))).all()
        assert sorted(slugs) == ["cisa", "krcert", "ncsc-kr"]
        collections = {c.alias: c for c in session.scalars(select(models.Collection))}
        assert set(collections) == {"community", "regional", "rok-us", "feedback", "reference"}
        assert collections["feedback"].is_feedback and not collections["community"].is_feedback
        ref = collections["reference"]
        assert (ref.is_reference, ref.title, ref.readers, ref.writers, ref.max_tlp, ref.default_tlp) == (
            True,
            "Reference data",
            "*",
            "partner:hub",
            int(TLP.CLEAR),
            int(TLP.CLEAR),
        )
        assert ref.uuid == str(uuid.uuid5(SHARING_NAMESPACE, "dprk/reference"))
        assert collections["regional"].readers == "group:asean,group:rok-us"


def test_plan_changes_nothing(tmp_path: Path, factory: sessionmaker[Session], published: list[Session]) -> None:
    before = counts(factory)
    changes = plan_file(factory, DEMO)
    assert len(changes) > 20 and all(c.kind == "add" for c in changes[1:])
    assert counts(factory) == before
    assert published == []
    apply_file(factory, DEMO)
    edited = write(tmp_path, DEMO.read_text().replace("clearance: GREEN", "clearance: AMBER"))
    before = counts(factory)
    assert [str(c) for c in plan_file(factory, edited)] == ["~ partner mmcert: clearance GREEN -> AMBER"]
    assert counts(factory) == before
    assert [str(c) for c in plan_file(factory, edited)] == ["~ partner mmcert: clearance GREEN -> AMBER"]


def test_changing_max_tlp_is_an_update(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    edited = write(tmp_path, BASE.replace("max_tlp: GREEN", "max_tlp: AMBER"), "edited.yaml")
    expected = sc.Change("update", "collection dprk/community", "max_tlp GREEN -> AMBER")
    assert plan_file(factory, edited) == [expected]
    assert str(expected) == "~ collection dprk/community: max_tlp GREEN -> AMBER"
    assert apply_file(factory, edited) == [expected]
    with factory() as session:
        row = session.scalars(select(models.Collection).where(models.Collection.alias == "community")).one()
        assert row.max_tlp == int(TLP.AMBER)
        state = session.get(models.HubState, 1)
        assert state is not None and state.rules_version == 3


def test_update_lists_every_changed_field(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    text = BASE.replace('readers: ["group:rok-us"]', 'readers: ["group:rok-us", "partner:singcert"]')
    text = text.replace('title: "Restricted"', 'title: "Restricted channel"')
    text = text.replace("members: [krcert, cisa]", "members: [krcert]")
    changes = [str(c) for c in plan_file(factory, write(tmp_path, text, "edited.yaml"))]
    assert changes == [
        "~ trust group rok-us: members -cisa",
        "~ collection dprk/restricted: title 'Restricted' -> 'Restricted channel'; readers +partner:singcert",
    ]


def test_removing_a_partner_suspends_it(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    text = BASE.replace('  - {id: cisa, name: "CISA", country: us, kind: government}\n', "")
    text = text.replace("members: [krcert, cisa]", "members: [krcert]").replace(', "partner:cisa"', "")
    edited = write(tmp_path, text, "edited.yaml")
    changes = [str(c) for c in apply_file(factory, edited)]
    assert "~ partner cisa: active true -> false (not in the file: suspended)" in changes
    with factory() as session:
        cisa = session.scalars(select(models.Partner).where(models.Partner.slug == "cisa")).one()
        assert cisa.active is False
    assert plan_file(factory, edited) == []
    # Putting it back reactivates the same row.
    assert [str(c) for c in plan_file(factory, write(tmp_path, BASE))] == [
        "~ partner cisa: active false -> true",
        "~ trust group rok-us: members +cisa",
        "~ collection dprk/community: writers +partner:cisa",
    ]


def test_removed_groups_and_empty_collections_go(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    start = BASE.index("      - alias: restricted")
    text = BASE[:start].replace('"group:asean", ', "")
    asean = '  - {id: asean, name: "ASEAN national CERTs", members: [singcert], countries: [MY, SG, TH]}\n'
    text = text.replace(asean, "")
    changes = [str(c) for c in apply_file(factory, write(tmp_path, text, "edited.yaml"))]
    assert "- trust group asean" in changes
    assert "- collection dprk/restricted" in changes
    assert "~ collection dprk/community: writers -group:asean" in changes
    with factory() as session:
        assert session.scalars(select(models.TrustGroup.slug)).all() == ["rok-us"]
        assert sorted(session.scalars(select(models.Collection.alias))) == ["community", "reference"]


def add_object(factory: sessionmaker[Session], alias: str) -> None:
    """Store one object version in a collection, as a publisher would."""
    with db.transaction(factory) as session:
        collection = session.scalars(select(models.Collection).where(models.Collection.alias == alias)).one()
        partner = session.scalars(select(models.Partner).where(models.Partner.slug == "krcert")).one()
        session.add(
            models.ObjectVersion(
                collection_id=collection.id,
                stix_id=f"indicator--{uuid.uuid4()}",
                type="indicator",
                version="2024-01-01T00:00:00.000Z",
                version_us=1_704_067_200_000_000,
                date_added=1,
                originator_id=partner.id,
                tlp=int(TLP.AMBER),
                raw="{}",
            )
        )


def test_collection_holding_objects_is_not_removed(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    add_object(factory, "restricted")
    text = BASE[: BASE.index("      - alias: restricted")]
    edited = write(tmp_path, text, "edited.yaml")
    before = counts(factory)
    expected = rf"^{edited}: collection dprk/restricted not in the file but holding objects"
    with pytest.raises(ConfigError, match=expected):
        apply_file(factory, edited)
    with pytest.raises(ConfigError, match="dprk/restricted"):
        plan_file(factory, edited)
    assert counts(factory) == before


def test_removed_api_root_takes_its_reference_collection(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    extra = BASE + "  - {id: trial, title: Trial, collections: [{alias: x, title: X, max_tlp: CLEAR}]}\n"
    apply_file(factory, write(tmp_path, extra))
    changes = [str(c) for c in apply_file(factory, write(tmp_path, BASE, "base.yaml"))]
    assert changes == ["- collection trial/x", "- collection trial/reference (reference data)", "- API root trial"]
    with factory() as session:
        assert session.scalars(select(models.ApiRoot.slug)).all() == ["dprk"]


def test_stored_ids_are_not_replaced_by_derived_ones(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    custom = "0f8e2c5a-8a2b-4b59-9d3e-6b3f2a1c0d9e"
    with db.transaction(factory) as session:
        row = session.scalars(select(models.Collection).where(models.Collection.alias == "community")).one()
        row.uuid = custom
    assert plan_file(factory, write(tmp_path, BASE)) == []
    explicit = BASE.replace("{alias: community,", f"{{id: {sc.collection_uuid('dprk', 'community')}, alias: community,")
    (change,) = plan_file(factory, write(tmp_path, explicit, "explicit.yaml"))
    assert str(change).startswith(f"~ collection dprk/community: uuid '{custom}' -> ")


def test_duplicate_identity_with_a_stored_partner(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    # mycert leaves the file (suspended, keeping its identity); cisa claims that identity.
    taken = sc.partner_identity("mycert")
    text = BASE.replace('  - {id: mycert, name: "MyCERT", country: MY, clearance: GREEN}\n', "")
    text = text.replace("kind: government}", f"kind: government, identity: {taken}}}")
    path = write(tmp_path, text, "edited.yaml")
    with pytest.raises(ConfigError) as caught:
        apply_file(factory, path)
    line = line_of(text, taken)
    expected = f"{path}:{line}: identity {taken} of partner cisa already belongs to partner mycert"
    assert expected in str(caught.value)


def test_hub_name_change_renames_the_hub_partner(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, write(tmp_path, BASE))
    changes = plan_file(factory, write(tmp_path, BASE.replace('"Test hub"', '"Renamed hub"'), "edited.yaml"))
    assert [str(c) for c in changes] == [
        "~ hub: name 'Test hub' -> 'Renamed hub'",
        "~ partner hub: name 'Test hub' -> 'Renamed hub'",
    ]


# --------------------------------------------------------------------- export


def test_export_round_trips(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    apply_file(factory, DEMO)
    with factory() as session:
        text = sc.export(session)
    assert "id: hub," not in text and "reference" not in text.split("api_roots:")[1]
    exported = write(tmp_path, text, "exported.yaml")
    assert plan_file(factory, exported) == []
    spec, demo = sc.load(exported), sc.load(DEMO)
    assert (spec.partners, spec.groups, spec.roots) == (demo.partners, demo.groups, demo.roots)
    with factory() as session:
        assert sc.export(session) == text


def test_export_round_trips_suspension_and_explicit_ids(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    identity = "identity--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"
    text = BASE.replace("kind: government}", f"kind: government, identity: {identity}, active: false}}")
    text = text.replace("{alias: community,", "{id: 5b9f2c8e-1d3a-4e6f-8a7b-9c0d1e2f3a4b, alias: community,")
    apply_file(factory, write(tmp_path, text))
    with factory() as session:
        exported = sc.export(session)
    assert "active: false" in exported and identity in exported and "5b9f2c8e-1d3a" in exported
    assert plan_file(factory, write(tmp_path, exported, "exported.yaml")) == []


def test_blocklist_limits_apply_and_round_trip(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    text = BASE.replace(
        "types: [indicator, malware]",
        "types: [indicator, malware]\n        blocklist_ipv4_prefix: 32\n        blocklist_ipv6_prefix: 64",
    )
    apply_file(factory, write(tmp_path, text))
    with factory() as session:
        rows = {c.alias: c for c in session.scalars(select(models.Collection))}
        exported = sc.export(session)
    assert (rows["restricted"].blocklist_ipv4_prefix, rows["restricted"].blocklist_ipv6_prefix) == (32, 64)
    assert (rows["community"].blocklist_ipv4_prefix, rows["community"].blocklist_ipv6_prefix) == (24, 48)
    assert exported.count("blocklist_ipv4_prefix: 32") == 1 and exported.count("blocklist_ipv6_prefix: 64") == 1
    assert "blocklist_ipv4_prefix: 24" not in exported  # the default is left out
    assert plan_file(factory, write(tmp_path, exported, "exported.yaml")) == []
    changes = plan_file(factory, write(tmp_path, BASE, "defaults.yaml"))
    assert [str(c) for c in changes] == [
        "~ collection dprk/restricted: blocklist_ipv4_prefix 32 -> 24; blocklist_ipv6_prefix 64 -> 48"
    ]


def test_blocklist_allow_warninglisted_applies_and_round_trips(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    text = BASE.replace(
        "types: [indicator, malware]", "types: [indicator, malware]\n        blocklist_allow_warninglisted: true"
    )
    changes = apply_file(factory, write(tmp_path, text))
    assert any("blocklists list warninglisted values" in str(c) for c in changes)
    with factory() as session:
        rows = {c.alias: c for c in session.scalars(select(models.Collection))}
        exported = sc.export(session)
    assert rows["restricted"].blocklist_allow_warninglisted and not rows["community"].blocklist_allow_warninglisted
    assert exported.count("blocklist_allow_warninglisted: true") == 1
    assert "blocklist_allow_warninglisted: false" not in exported  # the default is left out
    assert plan_file(factory, write(tmp_path, exported, "exported.yaml")) == []
    changes = plan_file(factory, write(tmp_path, BASE, "defaults.yaml"))
    assert [str(c) for c in changes] == ["~ collection dprk/restricted: blocklist_allow_warninglisted true -> false"]


def test_feedback_and_false_positive_settings_apply_and_round_trip(
    tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    text = BASE.replace(
        "types: [indicator, malware]",
        "types: [indicator, malware]\n        false_positive_threshold: 3\n        false_positive_withdraw: true",
    ).replace('readers: ["*"], writers', 'feedback: true, readers: ["*"], writers')
    changes = apply_file(factory, write(tmp_path, text))
    assert any("the feedback collection" in str(c) for c in changes)
    assert any("3 partners' false-positive reports flag an indicator and withdraw it" in str(c) for c in changes)
    with factory() as session:
        rows = {c.alias: c for c in session.scalars(select(models.Collection))}
        exported = sc.export(session)
    assert rows["community"].is_feedback and not rows["restricted"].is_feedback
    assert (rows["restricted"].false_positive_threshold, rows["restricted"].false_positive_withdraw) == (3, True)
    assert exported.count("feedback: true") == 1 and "false_positive_threshold: 3" in exported
    assert plan_file(factory, write(tmp_path, exported, "exported.yaml")) == []
    changes = plan_file(factory, write(tmp_path, BASE, "defaults.yaml"))
    assert sorted(str(c) for c in changes) == [
        "~ collection dprk/community: is_feedback true -> false",
        "~ collection dprk/restricted: false_positive_threshold 3 -> 0; false_positive_withdraw true -> false",
    ]


def test_export_of_an_empty_hub_loads(tmp_path: Path, factory: sessionmaker[Session]) -> None:
    with factory() as session:
        text = sc.export(session)
    spec = sc.load(write(tmp_path, text))
    assert (spec.hub_name, spec.partners, spec.groups, spec.roots) == ("cti-hub", (), (), ())


# --------------------------------------------------------------------- changes


def test_change_strings() -> None:
    assert (
        str(sc.Change("add", "partner krcert", "KrCERT/CC, KR, clearance RED"))
        == "+ partner krcert (KrCERT/CC, KR, clearance RED)"
    )
    assert (
        str(sc.Change("update", "collection dprk/community", "max_tlp GREEN -> AMBER"))
        == "~ collection dprk/community: max_tlp GREEN -> AMBER"
    )
    assert str(sc.Change("remove", "trust group old")) == "- trust group old"


def test_with_the_real_reference_publishing(database: sessionmaker[Session]) -> None:
    """Apply the demo with the real ``publish_reference``."""
    apply_file(database, DEMO)
    assert apply_file(database, DEMO) == []
    with database() as session:
        ref = session.scalars(select(models.Collection).where(models.Collection.is_reference.is_(True))).one()
        stored = session.scalar(select(func.count()).where(models.ObjectVersion.collection_id == ref.id))
        assert stored
