"""Flat feeds for SIEMs and firewalls, per partner and collection, under the same rules as TAXII.

``GET /feeds/<api_root>/<collection>/<fmt>`` with ``fmt`` one of ``stix`` (a STIX 2.1 bundle),
``csv``, ``ecs`` (Elastic Common Schema NDJSON) or a blocklist ``ip.txt``, ``domain.txt``,
``url.txt``, ``sha256.txt``. Authentication is the TAXII one (Basic with the API key as password,
or Bearer/Token). Every page is read through the partner's compiled read filter, exactly as the
TAXII endpoints read: a collection the partner cannot read, and every hidden object, is absent.

Incremental: the response carries ``X-Feed-Cursor`` (a ``date_added`` value); the next poll sends
it back as ``?since=``. The cursor is the last position of the partner's view the response covers
(the view is read up to the hub clock when the request began), so rows committed during a long
download come in the next poll instead of being skipped, and writes the partner cannot see leave it
unchanged. By default only active indicators
are listed (not revoked, not past ``valid_until``); ``?include=withdrawn`` adds the withdrawn ones,
flagged, so a SIEM can remove them (blocklists then list only the withdrawn values: a removal list).
It also lists the objects that left this partner's view (``hub.withdrawals``: the rules narrowed,
the originator deleted it, an administrator recalled it) after the same cursor: in the STIX bundle as
an ``x-cti-hub-withdrawal`` object whose ``object_ref`` names the object, in the other formats as
the indicator last seen, flagged withdrawn. An indicator its collection withdrew after enough
false-positive reports (:mod:`hub.feedback`) is left out of the blocklists and listed there as such a
withdrawal. CSV and ECS carry the partners' anonymous feedback counts beside each indicator. The
response is recorded in the delivery ledger before the body streams page by page.
"""

from __future__ import annotations

import csv
import functools
import io
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, g, request
from sqlalchemy.orm import Session

from hub import acs, auth, feedback, ledger, ratelimit, stix, withdrawals
from hub import models as m
from hub.errors import TooManyRequests
from hub.formats import BLOCKLISTS, FORMATS, blocklist_reason, blocklist_value, observable, withdrawn
from hub.ids import HUB_NAMESPACE
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import clock, reads, snapshots
from hub.store import feedback as feedback_store

bp = Blueprint("feeds", __name__, url_prefix="/feeds")
PAGE = 1000
CSV_COLUMNS = (
    "id",
    "observable_type",
    "value",
    "name",
    "tlp",
    "valid_from",
    "valid_until",
    "modified",
    "confidence",
    "status",
    "pattern",
    "blocklist",
    "acs",
    "acs_further_sharing",
    "sightings",
    "false_positives",
    "last_seen",
)
NO_COUNTS = feedback.Tally()
CHALLENGE = 'Basic realm="cti-hub", Bearer realm="cti-hub"'


def init_app(app: Flask) -> None:
    """Serve the flat feeds on ``app``."""
    app.register_blueprint(bp)


def _hub() -> Hub:
    return current_app.extensions["cti_hub"]


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain", headers=headers or {})


def _authenticate(hub: Hub) -> auth.Principal | Response:
    try:
        with hub.session(write=False) as session:
            found = auth.authenticate(
                hub,
                session,
                request.headers.get("Authorization", ""),
                request.remote_addr or "",  # the key's one budget, shared with TAXII:
                functools.partial(ratelimit.check, current_app),
                auth.certificate_of(request.environ, hub.settings),
            )
    except TooManyRequests as exc:
        return _plain(429, exc.message, dict(exc.headers or {}))
    g.hub_caller = found
    if not isinstance(found, auth.Principal):
        return _plain(
            401, "authentication required: HTTP Basic (API key as password) or Bearer", {"WWW-Authenticate": CHALLENGE}
        )
    return found


@bp.get("/<api_root>/<collection_id>/<fmt>")
def feed(api_root: str, collection_id: str, fmt: str) -> Response:
    """One feed: authenticate, find the collection the partner reads, stream its view."""
    hub = _hub()
    principal = _authenticate(hub)
    if isinstance(principal, Response):
        return principal
    if fmt not in FORMATS:
        return _plain(404, f"unknown feed format {fmt!r}: use one of {', '.join(FORMATS)}")
    since = None
    if request.args.get("since"):
        try:
            since = stix.parse_filter_timestamp(request.args["since"])
        except ValueError:
            return _plain(400, f"since: {request.args['since']!r} is not an RFC 3339 timestamp")
    include = request.args.get("include", "")
    if include not in ("", "withdrawn"):
        return _plain(400, f"include: {include!r} is not supported (use include=withdrawn)")
    with hub.session(write=False) as session:  # the sharing rules: from the primary, always
        snap = hub.snapshot(session, principal.rules_version)
    collection = _readable(snap, principal.partner_pk, api_root, collection_id)
    if collection is None:
        return _plain(404, f"collection '{collection_id}' not found")
    query = reads.VersionQuery(
        collection_pk=collection.pk,
        read=snap.read_filter(principal.partner_pk, collection),
        originator_pk=principal.partner_pk,
        after=since,
        types=() if fmt == "stix" else ("indicator",),
        limit=PAGE,
    )
    context: dict[str, Any] = {
        "feed": snap.hub_name,
        "collection": collection,
        "withdrawn": include == "withdrawn",
        "providers": {pk: row.slug for pk, row in snap.partner_rows.items()},
        "acs": _acs_markings(snap),
        "removed": [],
    }
    with hub.session(write=False) as session:  # the false-positive flags, like the rules: from the primary
        # Indicators reported as false positives by the collection's threshold and withdrawn (hub.feedback).
        context["false_positives"] = feedback_store.withdrawn_ids(session, collection.pk)
    upto, span = hub.read(functools.partial(_extent, query), position=since)
    ledger.record_feed(hub, principal, snap, collection, query, fmt, span, include)
    if include == "withdrawn":
        context["removed"] = withdrawals.for_feed(hub, principal.partner_pk, collection.pk, since, upto)
    # The cursor and the bundle id come from what this partner receives only: a write it cannot see
    # changes neither (SECURITY.md "Side channels").
    removed: list[Any] = context["removed"]
    last = max([since or 0, span[1] or 0, *(w.position for w in removed)])
    context["bundle"] = _bundle_id(collection, since, span, last)
    cursor = stix.format_timestamp(last)
    body = _stream(hub, query, upto, fmt, context)
    return Response(body, mimetype=FORMATS[fmt], headers={"X-Feed-Cursor": cursor, "Cache-Control": "no-store"})


def _readable(
    snap: snapshots.Snapshot, partner_pk: int, api_root: str, collection_id: str
) -> snapshots.CollectionInfo | None:
    found = snap.find_collection(api_root, collection_id)
    if found is None or not snap.world.granted(found.rules.readers, snap.partners[partner_pk]):
        return None
    return found


def _extent(query: reads.VersionQuery, session: Session) -> tuple[int, tuple[int | None, int | None, int]]:
    """The hub clock of the server answering (the feed's end) and the partner's view up to it."""
    state = session.get(m.HubState, 1)
    assert state is not None
    return state.clock_us, reads.view_range(session, query, state.clock_us)


def _counted_page(session: Session, q: reads.VersionQuery, columns: tuple[str, ...], counted: bool) -> tuple:
    """One page of the partner's view and, when ``counted``, the anonymous feedback counts of its rows."""
    rows, more = reads.page(session, q, columns)
    counts = feedback.tallies(session, [(r.stix_id, r.originator_id, r.tlp) for r in rows]) if counted else {}
    return rows, more, counts


def _rows(hub: Hub, query: reads.VersionQuery, upto: int, counted: bool) -> Iterator[tuple[Any, feedback.Tally]]:
    """Every row of the partner's view up to ``upto`` with its anonymous feedback counts (when ``counted``),
    one page per query and its own session.

    Each page may come from another replica (or the primary), but only from one that has replayed
    ``upto``: the feed lists everything its cursor covers.
    """
    after = query.after
    columns = ("stix_id", "raw", "date_added", "tlp", "originator_id")
    while True:
        page_query = replace(query, after=after)
        page = functools.partial(_counted_page, q=page_query, columns=columns, counted=counted)
        rows, more, counts = hub.read(page, position=upto)
        for row in rows:
            if row.date_added > upto:
                return
            yield row, counts.get((row.stix_id, row.originator_id), NO_COUNTS)
        if not more or not rows:
            return
        after = rows[-1].date_added


def _stream(hub: Hub, query: reads.VersionQuery, upto: int, fmt: str, context: dict) -> Iterator[str]:
    now = clock.now_us()
    if fmt == "stix":
        yield '{"type":"bundle","id":"bundle--' + context["bundle"] + '","objects":['
    elif fmt == "csv":
        yield ",".join(CSV_COLUMNS) + "\r\n"
    first = True
    seen: set[str] = set()
    for row, counts in _rows(hub, query, upto, fmt in ("csv", "ecs")):
        obj = orjson.loads(row.raw)
        gone = withdrawn(obj, now)
        if fmt == "stix":
            if gone and not context["withdrawn"]:
                continue
            yield ("" if first else ",") + row.raw
            first = False
            continue
        if (gone and not context["withdrawn"]) or (fmt in BLOCKLISTS and gone != context["withdrawn"]):
            continue
        if fmt in BLOCKLISTS and obj["id"] in context["false_positives"]:
            continue  # withdrawn from the blocklists: listed as removed (include=withdrawn) by its withdrawal
        line = _flat_line(fmt, obj, row.tlp, gone, row.originator_id, context, seen, counts)
        if line is not None:
            yield line
    for line in _removed(context, fmt, seen):
        yield ("" if first or fmt != "stix" else ",") + line
        first = False
    if fmt == "stix":
        yield "]}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Keep a cell text in spreadsheets: one starting with = + - @ tab or CR would be read as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _removed(context: dict, fmt: str, seen: set[str]) -> Iterator[str]:
    """The partner's withdrawals (objects that left its view), in the feed's format."""
    for w in context["removed"]:
        if fmt == "stix":
            yield orjson.dumps(withdrawal_object(w)).decode()
            continue
        if w.object_type != "indicator":
            continue
        line = _flat_line(
            fmt, {**orjson.loads(w.summary), "id": w.stix_id}, w.tlp, True, w.originator_id, context, seen
        )
        if line is not None:
            yield line


def _flat_line(
    fmt: str,
    obj: dict,
    tlp: int,
    gone: bool,
    originator_pk: int,
    context: dict,
    seen: set[str],
    counts: feedback.Tally | None = None,
) -> str | None:
    """One indicator as a blocklist value, CSV row or ECS document; None for a value of another kind or listed."""
    found = observable(obj)
    counts = counts or NO_COUNTS
    if fmt == "csv":
        return _csv_line(obj, found, tlp, gone, context, counts)
    if fmt not in BLOCKLISTS:
        return orjson.dumps(ecs_document(obj, found, tlp, gone, context, originator_pk, counts)).decode() + "\n"
    value = blocklist_value(fmt, obj, context["collection"].blocklist)
    if value is None or value in seen:
        return None
    seen.add(value)
    return value + "\n"


def withdrawal_object(w: Any) -> dict:
    """The STIX bundle entry telling a partner that an object left its view: drop ``object_ref``."""
    at = stix.format_timestamp(w.at_us)
    return {
        "type": "x-cti-hub-withdrawal",
        "spec_version": "2.1",
        "id": f"x-cti-hub-withdrawal--{uuid.uuid5(HUB_NAMESPACE, f'withdrawal|{w.id}')}",
        "created": at,
        "modified": at,
        "object_ref": w.stix_id,
        "object_type": w.object_type,
        "reason": w.reason,
        "withdrawn": True,
    }


def _bundle_id(collection: snapshots.CollectionInfo, since: int | None, span: tuple, last: int) -> str:
    """The same id for the same view: the collection, the window and what the partner's view holds in it."""
    return str(uuid.uuid5(HUB_NAMESPACE, f"feed|{collection.uuid}|{since}|{span[0]}|{span[2]}|{last}"))


def _acs_markings(snap: snapshots.Snapshot) -> dict[str, acs.AcsRules]:
    """The ACS 3.0 markings the hub holds, by id (their enforced rules carry the summary)."""
    return {
        mid: info.sharing.acs
        for mid, info in snap.markings.items()
        if info.sharing is not None and info.sharing.acs is not None
    }


def acs_labels(obj: dict, markings: dict[str, acs.AcsRules]) -> tuple[str, str]:
    """The ACS summaries of an object's markings and the scopes they permit further sharing to ('' if none).

    For example ``("U; FD=FOUO,AIS; CISAUSES=permit:ALL; ...", "USA.USG")``, several markings joined by `` | ``.
    """
    found = [markings[r] for r in obj.get("object_marking_refs") or () if isinstance(r, str) and r in markings]
    summaries = " | ".join(rules.summary for rules in found)
    scopes = ",".join(sorted({s for rules in found for s in acs.further_sharing_scope(rules).split(",") if s}))
    return summaries, scopes


def _listing_reason(obj: dict, context: dict) -> str:
    """Why an indicator is in no blocklist ("" when it is): a false-positive withdrawal, or its value."""
    if obj["id"] in context.get("false_positives", ()):
        return "reported as a false positive by the collection's threshold of partners: withdrawn from the blocklists"
    return blocklist_reason(obj, context["collection"].blocklist)


def _csv_line(
    obj: dict, found: tuple[str, str] | None, tlp: int, gone: bool, context: dict, counts: feedback.Tally
) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(
        csv_cell(cell)
        for cell in [
            obj["id"],
            found[0] if found else "",
            found[1] if found else "",
            obj.get("name", ""),
            TLP(tlp).label,
            obj.get("valid_from", ""),
            obj.get("valid_until", ""),
            obj.get("modified", ""),
            obj.get("confidence", ""),
            "withdrawn" if gone else "active",
            obj.get("pattern", ""),
            _listing_reason(obj, context),
            *acs_labels(obj, context["acs"]),
            counts.sightings,
            counts.false_positives,
            stix.format_timestamp(counts.last_seen_us) if counts.last_seen_us is not None else "",
        ]
    )
    return out.getvalue()


def _confidence(value: Any) -> str:
    if not isinstance(value, int):
        return "Not Specified"
    if value == 0:
        return "None"
    return "Low" if value < 30 else "Medium" if value < 70 else "High"


def ecs_document(
    obj: dict,
    found: tuple[str, str] | None,
    tlp: int,
    gone: bool,
    context: dict,
    originator_pk: int,
    counts: feedback.Tally | None = None,
) -> dict:
    """One ECS ``threat.indicator`` document for an indicator (see the ECS threat field set)."""
    indicator: dict[str, Any] = {
        "id": [obj["id"]],
        "name": obj.get("name", ""),
        "confidence": _confidence(obj.get("confidence")),
        "first_seen": obj.get("valid_from"),
        "last_seen": obj.get("modified"),
        "modified_at": obj.get("modified"),
        "marking": {"tlp": TLP(tlp).name.replace("_", "+"), "tlp_version": "2.0"},
        "provider": context["providers"].get(originator_pk, ""),
    }
    counts = counts or NO_COUNTS
    # The partners' sightings, anonymously (hub.feedback): ECS threat.indicator.sightings and last_seen.
    indicator["sightings"] = counts.sightings
    if counts.last_seen_us is not None:
        indicator["last_seen"] = stix.format_timestamp(counts.last_seen_us)
    summaries, scopes = acs_labels(obj, context.get("acs") or {})
    if summaries:
        # The ACS 3.0 marking a SIEM filters on, beside TLP; the further-sharing scope as its own field.
        indicator["marking"]["acs"] = summaries
        indicator["marking"]["acs_further_sharing"] = scopes
    if obj.get("description"):
        indicator["description"] = obj["description"]
    if found is not None:
        kind, value = found
        indicator["type"] = "file" if kind.startswith("file:") else kind
        if kind in ("ipv4-addr", "ipv6-addr"):
            indicator["ip"] = value
        elif kind == "domain-name":
            indicator["url"] = {"domain": value}
        elif kind == "url":
            indicator["url"] = {"full": value, "original": value}
        elif kind == "email-addr":
            indicator["email"] = {"address": value}
        elif kind.startswith("file:"):
            name = kind.removeprefix("file:").replace("-", "").lower()
            indicator["file"] = {"hash": {name: value}}
    collection = context["collection"]
    doc: dict[str, Any] = {
        "@timestamp": obj.get("modified") or obj.get("created"),
        "event": {"kind": "enrichment", "category": ["threat"], "type": ["indicator"]},
        "threat": {"feed": {"name": context["feed"], "description": collection.title}, "indicator": indicator},
    }
    tags = [*(obj.get("labels") or []), *(["withdrawn"] if gone else [])]
    if tags:
        doc["tags"] = tags
    # Why the value is in no blocklist of the hub ("" when it is), e.g. a network wider than the limit.
    doc["labels"] = {"blocklist": _listing_reason(obj, context), "false_positives": str(counts.false_positives)}
    return {k: v for k, v in doc.items() if v is not None}
