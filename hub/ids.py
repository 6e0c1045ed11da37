"""The hub's identifiers: the UUID namespaces its derived ids come from, and the key ids compare under.

Each namespace must never change: every id derived from it, on every hub, would change with it.
"""

from __future__ import annotations

import uuid

# Objects the hub itself makes: its extension definition, withdrawals, feed ids, feeds' own namespaces.
HUB_NAMESPACE = uuid.UUID("6f1d5c1e-6b8a-4c1e-9a55-2d0c3b7e9f41")
# The ids sharing.yaml does not spell out (partner identities, group markings, collections).
SHARING_NAMESPACE = uuid.UUID("565444e7-0cf2-4c0c-beed-e09b599b2698")
# The demo data's objects.
DEMO_NAMESPACE = uuid.UUID("6f1c8a52-3e0b-4d6e-9a57-2c1d0b7e4f93")

SHARING_EXTENSION_ID = f"extension-definition--{uuid.uuid5(HUB_NAMESPACE, 'sharing-restriction')}"


def stix_key(stix_id: str) -> str:
    """The key an id's originator is recorded under: ids differing only in case are one id."""
    return stix_id.lower()


# The hub's statement marking a reporter puts on a sighting or opinion to release it, in full, to the
# recipients of the object it is about (hub.feedback); without it they receive anonymous counts only.
FEEDBACK_SHARE_ID = f"marking-definition--{uuid.uuid5(SHARING_NAMESPACE, 'feedback:share')}"
