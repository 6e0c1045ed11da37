"""The small sharing world the operations tests build (tests.worlds.small_world) works as they expect."""

from __future__ import annotations

from tests import factories as f
from tests.worlds import small_world


def test_build_world_gives_each_reader_a_working_key(make_app):
    app = make_app()
    world = small_world(app.extensions["cti_hub"])
    for slug in ("krcert", "cisa", "mycert"):
        r = f.Client(app.test_client(), world["keys"][slug]).get(world["url"])
        assert r.status_code == 200, slug
