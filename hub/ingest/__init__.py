"""Ingest: an envelope's objects validated, checked against the sharing rules and stored.

``envelope`` is the use case (``ingest_envelope``, ``delete_versions``); ``prepare`` validates each
object and works out its markings, outside the writer lock; ``rows`` judges ownership and
duplicates under the lock and turns what passes into version rows.
"""

from hub.ingest.envelope import delete_versions, envelope_objects, ingest_envelope, status_resource
from hub.ingest.prepare import Checked, IngestResult

__all__ = ["Checked", "IngestResult", "delete_versions", "envelope_objects", "ingest_envelope", "status_resource"]
