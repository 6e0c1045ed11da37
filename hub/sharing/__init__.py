"""The sharing configuration: partners, trust groups, API roots and collections.

``config/sharing.yaml`` bootstraps a hub and is what ``export`` writes back; at run time the
database is the source of truth.

- :mod:`hub.sharing.spec`: the configuration as data, and the ids derived from it;
- :mod:`hub.sharing.parse`: ``load``/``loads`` read and validate a file, naming every problem's ``file:line``
  (the sections in :mod:`hub.sharing.parse_partners` and :mod:`hub.sharing.parse_collections`, over the
  YAML node walker :mod:`hub.sharing.yaml_reader`);
- :mod:`hub.sharing.apply`: ``plan`` lists what ``apply`` would change, ``apply`` makes the database match;
- :mod:`hub.sharing.write`: the one write path for these rows, used by ``apply`` and the admin panel;
- :mod:`hub.sharing.export`: the database's configuration as YAML in the ``load`` format.
"""

from hub.sharing.apply import apply, plan
from hub.sharing.export import export
from hub.sharing.parse import load, loads
from hub.sharing.spec import (
    HUB_SLUG,
    Change,
    SharingSpec,
    collection_uuid,
    group_marking_id,
    hub_identity,
    partner_identity,
)

__all__ = [
    "HUB_SLUG",
    "Change",
    "SharingSpec",
    "apply",
    "collection_uuid",
    "export",
    "group_marking_id",
    "hub_identity",
    "load",
    "loads",
    "partner_identity",
    "plan",
]
