"""Resource abuse: each gets a clear error or a bound, never a 500, a hang or unbounded memory."""

from __future__ import annotations

import io
import json
import time
import uuid

import orjson
import pytest
from sqlalchemy import func, select

from hub import models as m
from tests import factories as f
from tests.security.conftest import GREEN, RED


class CountingStream(io.RawIOBase):
    """A request body of ``size`` bytes that remembers how much the server read."""

    def __init__(self, size: int) -> None:
        self.size, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b" " * n
        self.read_bytes += n
        return n


def post_stream(
    world,
    stream: CountingStream,
    *,
    length: bool,
    auth: bool = True,  # type: ignore[no-untyped-def]
    url: str | None = None,
) -> tuple[int, bytes]:
    """POST ``stream`` to ``url`` (the shared collection) through the WSGI app, with or without
    Content-Length; return the status code and the body."""
    from flask.testing import EnvironBuilder
    from werkzeug.test import run_wsgi_app

    headers = {"Content-Type": f.TAXII, "Accept": f.TAXII}
    if auth:
        headers["Authorization"] = f"Bearer {world.keys['krcert']}"
    environ = EnvironBuilder(world.app, url or world.url("shared"), method="POST", headers=headers).get_environ()
    environ["wsgi.input"] = stream
    if length:
        environ["CONTENT_LENGTH"] = str(stream.size)
    else:
        environ.pop("CONTENT_LENGTH", None)
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    app_iter, status, _headers = run_wsgi_app(world.app.wsgi_app, environ)
    return int(status.split()[0]), b"".join(app_iter)


def post_raw(world, body: bytes, slug: str = "krcert"):  # type: ignore[no-untyped-def]
    return world.client(slug).post(world.url("shared"), body=body)


def test_huge_limit_is_capped_at_the_page_size(world):
    app = world.make_app(max_page_size=2)
    kr = f.Client(app.test_client(), world.keys["krcert"])
    assert kr.post(world.url("shared"), [f.indicator(n, markings=[GREEN]) for n in (970, 971, 972)]).status_code == 202
    for limit in ("3", "1000000", str(10**30)):
        page = kr.get(world.url("shared"), {"limit": limit}).get_json()
        assert len(page["objects"]) == 2 and page["more"] is True and page["next"]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1e3", "", " 5", "0x10", "\u0661"])
def test_bad_limits_are_a_400(world, limit):
    r = world.client("krcert").get(world.url("shared"), {"limit": limit})
    assert r.status_code in (200, 400) and r.status_code != 500
    if r.status_code == 200:  # Python's int() accepts surrounding spaces and other digits: still bounded
        assert len(r.get_json().get("objects", [])) <= world.hub.settings["max_page_size"]


@pytest.mark.parametrize("depth", [99_000, 2_000])
def test_deeply_nested_json_body_is_a_clean_4xx(world, depth):
    start = time.perf_counter()
    r = post_raw(world, b"[" * depth + b"]" * depth)
    assert r.status_code in (400, 422) and r.get_json()["http_status"] == str(r.status_code)
    nested = b'{"objects": [' + b"[" * depth + b"]" * depth + b"]}"
    assert post_raw(world, nested).status_code in (400, 422)
    assert time.perf_counter() - start < 5


def test_object_nested_below_the_parser_limit_is_refused_per_object(world):
    value: list = []
    for _ in range(400):
        value = [value]
    obj = f.indicator(973, x_deep=value)
    body = json.dumps({"objects": [obj, f.indicator(974)]}).encode()  # orjson itself stops at 254 levels
    r = world.client("krcert").post(world.url("shared"), body=body)
    assert r.status_code == 202, r.get_data()[:200]
    assert r.get_json()["success_count"] == 1


def test_a_body_above_max_content_length_is_refused_without_reading_it(world):
    stream = CountingStream(50 * 1024 * 1024)
    assert post_stream(world, stream, length=True)[0] == 413
    assert stream.read_bytes <= 1024 * 1024


def test_a_body_without_length_is_read_only_up_to_the_limit(world):
    stream = CountingStream(50 * 1024 * 1024)
    assert post_stream(world, stream, length=False)[0] == 413
    assert stream.read_bytes <= 200_000 + 64 * 1024


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_a_body_from_an_unauthenticated_client_is_a_401_unread_whatever_root_it_names(world, length):
    """Authentication comes before size: a 413 for real roots only would tell an anonymous client which exist."""
    answers = set()
    for url in (world.url("shared"), "/invented/collections/3f7b1c1e-0000-4000-8000-000000000000/objects/"):
        stream = CountingStream(50 * 1024 * 1024)
        status, body = post_stream(world, stream, length=length, auth=False, url=url)
        assert status == 401 and stream.read_bytes == 0, url
        answers.add(body)
    assert len(answers) == 1


def test_many_tiny_objects_are_bounded_by_the_body_limit(world):
    start = time.perf_counter()
    body = b'{"objects": [' + b",".join([b"{}"] * 60_000) + b"]}"
    assert len(body) < 200_000
    r = post_raw(world, body)
    assert r.status_code == 202
    status = r.get_json()
    assert status["total_count"] == 60_000 and status["failure_count"] == 60_000
    assert time.perf_counter() - start < 30


def test_many_tiny_valid_objects_in_one_envelope(world):
    objs = [f.indicator(10_000 + n, markings=[GREEN]) for n in range(400)]
    start = time.perf_counter()
    r = world.client("krcert").post(world.url("shared"), objs)
    assert r.status_code == 202 and r.get_json()["success_count"] == 400
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize(
    "pattern",
    [
        " OR ".join(["[ipv4-addr:value = '198.51.100.1']"] * 4000),
        "(" * 20_000 + "[ipv4-addr:value = '198.51.100.1']" + ")" * 20_000,
        "[" + "(" * 20_000 + "ipv4-addr:value = '198.51.100.1'" + ")" * 20_000 + "]",
        "[file:name MATCHES '" + "(a+)+" * 2000 + "$']",
        "[ipv4-addr:value = '" + "\\'" * 50_000 + "']",
        "[" * 30_000,
    ],
    ids=["long-or", "deep-parens", "deep-inner-parens", "regex", "escapes", "brackets"],
)
def test_pathological_patterns_get_an_answer_in_bounded_time(world, pattern):
    obj = f.indicator(975, pattern=pattern)
    start = time.perf_counter()
    r = world.client("krcert").post(world.url("shared"), [obj])
    assert r.status_code == 202, r.get_data()[:200]
    assert r.get_json()["total_count"] == 1
    assert time.perf_counter() - start < 10


def test_an_envelope_of_large_strings_stays_within_the_limit(world):
    obj = f.indicator(976, description="x" * 190_000)
    r = world.client("krcert").post(world.url("shared"), [obj])
    assert r.status_code == 202
    too_big = f.indicator(977, description="x" * 210_000)
    assert world.client("krcert").post(world.url("shared"), [too_big]).status_code == 413


def test_many_filter_values_are_bounded(world):
    ids = ",".join(f"indicator--{n:08d}-0000-4000-8000-000000000000" for n in range(2000))
    start = time.perf_counter()
    r = world.client("singcert").get(world.url("shared"), {"match[id]": ids})
    assert r.status_code in (200, 400, 414)
    types = ",".join(["indicator"] * 5000)
    assert world.client("singcert").get(world.url("shared"), {"match[type]": types}).status_code in (200, 400, 414)
    assert time.perf_counter() - start < 10


def test_a_long_version_list_is_bounded(world):
    versions = ",".join(f"2024-05-01T00:00:{n // 1000:02d}.{n % 1000:03d}Z" for n in range(500))
    r = world.client("singcert").get(world.url("shared"), {"match[version]": versions})
    assert r.status_code in (200, 400) and orjson.loads(r.get_data())


# --------------------------------------------------------------------- restriction-set flood (issue 13, item 9)


def flood_marking(slug: str, n: int) -> dict:
    marking = f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, f'flood-{slug}-{n}')}"
    return f.sharing_marking(marking, countries=["KR", "SG", "US"])


def stored_counts(world, slug: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(sharing markings, restriction sets, object versions) the partner has stored."""
    with world.hub.session(write=False) as s:
        pk = s.scalar(select(m.Partner.id).where(m.Partner.slug == slug))
        markings = s.scalar(select(func.count()).select_from(m.Marking).where(m.Marking.originator_id == pk))
        sets = s.scalar(select(func.count()).select_from(m.RestrictionSet).where(m.RestrictionSet.created_by_id == pk))
        versions = s.scalar(
            select(func.count()).select_from(m.ObjectVersion).where(m.ObjectVersion.originator_id == pk)
        )
    return markings, sets, versions


def assert_quota_refusal(response, setting: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429, response.get_data()[:300]
    error = response.get_json()
    assert error["http_status"] == "429"
    assert setting in error["description"] and "quota" in error["description"]


def test_sharing_markings_beyond_the_quota_are_a_429_and_nothing_is_stored(world):
    world.new_partner("flooder1")
    app = world.make_app(max_sharing_markings_per_partner=3)
    flooder = f.Client(app.test_client(), world.keys["flooder1"])
    markings = [flood_marking("flooder1", n) for n in range(4)]
    assert flooder.post(world.url("shared"), markings[:2]).status_code == 202
    before = stored_counts(world, "flooder1")
    r = flooder.post(world.url("shared"), [f.indicator(980), *markings[2:]])
    assert_quota_refusal(r, "max_sharing_markings_per_partner")
    assert stored_counts(world, "flooder1") == before == (2, 0, 2)  # not the indicator, not the third marking
    assert flooder.post(world.url("shared"), [markings[2]]).status_code == 202  # up to the quota is fine
    assert_quota_refusal(flooder.post(world.url("shared"), [markings[3]]), "max_sharing_markings_per_partner")
    # Another partner's markings are its own quota's business.
    other = f.Client(app.test_client(), world.keys["cisa"])
    assert other.post(world.url("shared"), [flood_marking("cisa", n) for n in range(3)]).status_code == 202


def test_restriction_sets_beyond_the_quota_are_a_429_and_nothing_is_stored(world):
    world.new_partner("flooder2")
    markings = [flood_marking("flooder2", n) for n in range(4)]
    assert world.client("flooder2").post(world.url("shared"), markings).status_code == 202
    app = world.make_app(max_restriction_sets_per_partner=2)
    flooder = f.Client(app.test_client(), world.keys["flooder2"])
    ids = [mk["id"] for mk in markings]
    pairs = [[ids[0]], [ids[0], ids[1]], [ids[1], ids[2]], [ids[2], ids[3]]]
    objs = [f.indicator(981 + n, markings=[GREEN, *pair]) for n, pair in enumerate(pairs)]
    assert flooder.post(world.url("shared"), objs[:2]).status_code == 202
    before = stored_counts(world, "flooder2")
    assert before == (4, 2, 6)
    r = flooder.post(world.url("shared"), [f.indicator(990, markings=[GREEN, ids[0]]), objs[2]])
    assert_quota_refusal(r, "max_restriction_sets_per_partner")
    assert stored_counts(world, "flooder2") == before  # the envelope's object under an existing set neither
    # Objects under combinations the partner already has are still taken.
    assert flooder.post(world.url("shared"), [f.indicator(990, markings=[GREEN, ids[0]])]).status_code == 202
    # Another partner, reading and writing, is unaffected.
    assert world.client("singcert").get(world.url("shared")).status_code == 200
    other = world.client("cisa")
    assert other.post(world.url("shared"), [f.indicator(991, markings=[GREEN, ids[2], ids[3]])]).status_code == 202


def test_the_quota_settings_are_honoured_and_zero_turns_them_off(world):
    world.new_partner("flooder3")
    markings = [flood_marking("flooder3", n) for n in range(3)]
    one = world.make_app(max_sharing_markings_per_partner=1, max_restriction_sets_per_partner=1)
    off = world.make_app(max_sharing_markings_per_partner=0, max_restriction_sets_per_partner=0)
    strict = f.Client(one.test_client(), world.keys["flooder3"])
    free = f.Client(off.test_client(), world.keys["flooder3"])
    assert strict.post(world.url("shared"), markings[:1]).status_code == 202
    assert_quota_refusal(strict.post(world.url("shared"), markings[1:2]), "max_sharing_markings_per_partner")
    assert free.post(world.url("shared"), markings[1:]).status_code == 202
    ids = [mk["id"] for mk in markings]
    assert strict.post(world.url("shared"), [f.indicator(992, markings=[ids[0]])]).status_code == 202
    r = strict.post(world.url("shared"), [f.indicator(993, markings=[ids[1]])])
    assert_quota_refusal(r, "max_restriction_sets_per_partner")
    assert free.post(world.url("shared"), [f.indicator(993, markings=[ids[1]])]).status_code == 202
    assert stored_counts(world, "flooder3") == (3, 2, 5)
    # The defaults bound both.
    defaults = world.hub.settings
    assert 0 < defaults["max_sharing_markings_per_partner"] < defaults["max_restriction_sets_per_partner"]


def test_a_flood_of_restriction_sets_leaves_another_partners_view_as_it_was(world):
    """The read clause now probes each set's markings: a partner sees what the per-set rules admit."""
    world.new_partner("flooder4")
    shared_with_sg = flood_marking("flooder4", 0)
    only_cisa = f.sharing_marking(f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, 'f4-cisa')}", partners=["cisa"])
    named = f.sharing_marking(f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, 'f4-sg')}", partners=["singcert"])
    objs = [
        f.indicator(994, markings=[GREEN, shared_with_sg["id"]]),
        f.indicator(995, markings=[GREEN, shared_with_sg["id"], only_cisa["id"]]),
        f.indicator(996, markings=[RED, named["id"]]),
        f.indicator(997, markings=[RED, named["id"], only_cisa["id"]]),
    ]
    assert (
        world.client("flooder4").post(world.url("shared"), [shared_with_sg, only_cisa, named, *objs]).status_code == 202
    )
    seen = {o["id"] for o in world.client("singcert").get(world.url("shared")).get_json()["objects"]}
    assert objs[0]["id"] in seen and objs[1]["id"] not in seen
    assert objs[2]["id"] not in seen and objs[3]["id"] not in seen  # singcert's clearance is AMBER
    seen_by_cisa = {o["id"] for o in world.client("cisa").get(world.url("shared")).get_json()["objects"]}
    assert objs[0]["id"] in seen_by_cisa and objs[1]["id"] in seen_by_cisa
    assert objs[2]["id"] not in seen_by_cisa and objs[3]["id"] not in seen_by_cisa  # RED: cisa is not named
