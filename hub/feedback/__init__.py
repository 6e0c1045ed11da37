"""Feedback: sightings and false-positive reports flowing back to the originator of what they are about.

A partner posts feedback into its API root's feedback collection (a collection with ``feedback: true``):

- a STIX ``sighting`` whose ``sighting_of_ref`` names the object sighted;
- a STIX ``opinion`` whose ``object_refs`` names exactly one object: ``disagree`` or ``strongly-disagree``
  is a *false-positive report* (MISP's false-positive sightings are exported so by misp-stix), any other
  opinion is plain feedback.

The object must be one the reporter can read in a collection of the same API root (not the feedback or
reference collection); any other id, hidden or never held, is refused with the same message. Feedback is
TLP-marked like any object; it must be receivable by the object's originator (``policy.can_report``).
Then (``policy`` step 9):

- the originator receives it, in full, in the feedback collection, which shows each partner only its own
  feedback and feedback about its own objects;
- the object's other recipients receive anonymous counts (``Tally``): in the flat feeds beside each
  indicator, and over TAXII as the hub's own ``sighting`` per object and collection (``aggregate_object``:
  no ``where_sighted_refs``, created by the hub), released exactly as the object's newest version;
- with the hub's ``FEEDBACK_SHARE_ID`` statement marking the reporter releases the feedback itself: a copy
  is stored in each collection where it sees the object, under the rules of both (the higher TLP, every
  sharing marking of either), so it reaches only recipients of that object who may also receive it.

An indicator that ``false_positive_threshold`` distinct partners report as false positive in a collection
is flagged to its originator (a note from the hub in the feedback collection) and, with
``false_positive_withdraw``, withdrawn from the collection's blocklists (a withdrawal like any other, in
every recipient's feed); when fewer partners report it again the flag is cleared and it returns.
"""

from hub.feedback.counts import Tally, aggregate_id, refresh, tallies, tally
from hub.feedback.intake import FALSE_POSITIVE_OPINIONS, after_store, describe, resolve

__all__ = [
    "FALSE_POSITIVE_OPINIONS",
    "Tally",
    "after_store",
    "aggregate_id",
    "describe",
    "refresh",
    "resolve",
    "tallies",
    "tally",
]
