"""The hub's TAXII backend answers every call medallion's routes make, with medallion's parameters."""

from __future__ import annotations

import inspect

import pytest
from medallion.backends.base import Backend

from hub.taxii.backend import HubBackend

METHODS = sorted(name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_"))


def test_medallion_declares_the_backend_methods_the_hub_serves():
    # A medallion release that renames or adds a backend method must fail here, not in a partner's poll.
    assert {
        "server_discovery",
        "get_collections",
        "get_collection",
        "get_objects",
        "get_object",
        "add_objects",
        "delete_object",
        "get_object_versions",
        "get_object_manifest",
        "get_status",
        "get_api_root_information",
    } <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_every_backend_method_is_the_hubs_own_with_medallions_parameters(name):
    mine = getattr(HubBackend, name)
    assert mine is not getattr(Backend, name), f"HubBackend inherits {name} from medallion (it raises there)"
    theirs = inspect.signature(getattr(Backend, name)).parameters
    ours = inspect.signature(mine).parameters
    assert list(ours) == list(theirs), f"{name}{inspect.signature(mine)} differs from medallion's parameters"
    assert all(p.kind == theirs[n].kind for n, p in ours.items()), name
