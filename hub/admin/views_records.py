"""The panel's audit log and object pages, and an object's recall."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, flash, redirect, render_template, request, url_for

from hub import formats, revisions, stix, withdrawals
from hub.admin import data_feedback, data_records, forms, preview, timeline
from hub.admin.blueprint import bp
from hub.admin.views import current_actor, current_hub, reading
from hub.errors import BadRequest, NotFound
from hub.stix import values as stix_values
from hub.store import archive, clock


def _page() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 10_000))
    except ValueError:
        return 1


# --------------------------------------------------------------------- audit


def _audit_filter() -> data_records.AuditFilter:
    a = request.args
    return data_records.AuditFilter(
        actor=a.get("actor", "").strip(),
        action=a.get("action", "").strip(),
        target=a.get("target", "").strip(),
        since=a.get("since", "").strip(),
        until=a.get("until", "").strip(),
    )


@bp.get("/audit")
def audit() -> Any:
    f = _audit_filter()
    page = _page()
    error = None
    with reading() as s:
        try:
            rows, more = data_records.audit_page(s, f, page)
        except BadRequest as exc:
            rows, more, error = [], False, exc.message
        actions = data_records.audit_actions(s)
    return render_template(
        "admin/audit.html", rows=rows, more=more, page=page, f=f, actions=actions, error=error
    ), 400 if error else 200


@bp.get("/audit.csv")
def audit_csv() -> Any:
    with reading() as s:
        body = data_records.audit_csv(s, _audit_filter())
    return Response(
        body, mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=cti-hub-audit.csv"}
    )


# --------------------------------------------------------------------- objects


def _object_search() -> data_records.ObjectSearch:
    a = request.args
    before = a.get("before", "").strip()
    if before and not before.isdigit():
        raise BadRequest(f"'{before}' is not a page position: follow the panel's 'Next page' link")
    return data_records.ObjectSearch(
        **{k: a.get(k, "").strip() for k in ("id", "type", "partner", "tlp", "text", "collection")},
        exact=a.get("exact", "") not in ("", "0"),
        before=int(before) if before else None,
    )


@bp.get("/objects/")
def objects() -> Any:
    error, q = None, data_records.ObjectSearch()
    hub = current_hub()
    with reading() as s:
        snap = hub.snapshot(s)
        try:
            q = _object_search()
            rows, next_before = data_records.search_objects(s, snap, q)
        except (BadRequest, ValueError) as exc:
            rows, next_before, error = [], None, getattr(exc, "message", str(exc))
        body = render_template(
            "admin/objects.html",
            rows=rows,
            next_url=_page_url(next_before) if next_before is not None else None,
            first_url=_page_url(None),
            q=q,
            error=error,
            types=sorted(stix.OBJECT_TYPES),
            partners=sorted(snap.by_slug),
            collections=sorted(snap.collections.values(), key=lambda c: (c.api_root, c.alias)),
            by_pk={c.pk: c for c in snap.collections.values()},
            originator={pk: p.slug for pk, p in snap.partners.items()},
        )
    return body, 400 if error else 200


def _page_url(before: int | None) -> str:
    """This search's page of the versions stored before ``before`` (None: the newest)."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "before"}
    if before is not None:
        args["before"] = before
    return url_for("admin.objects", **args)


@bp.get("/objects/<stix_id>")
def object_detail(stix_id: str) -> Any:
    return object_page(stix_id)


def object_page(
    stix_id: str,
    recall_form: forms.RecallForm | None = None,
    error: str | None = None,
    *,
    revise_error: str | None = None,
    edited: dict[str, str] | None = None,
) -> Any:
    """The object page; ``error`` is a refused recall, ``revise_error`` a refused revision (whose text
    ``edited`` keeps, by collection id)."""
    hub = current_hub()
    with reading() as s:
        snap = hub.snapshot(s)
        versions = data_records.object_versions(s, stix_id)
        withdrawn = data_records.withdrawals_of(s, snap, stix_id)
        archived = archive.archived_by_id(s, stix_id)
        if not versions and not withdrawn and not archived:
            raise NotFound(f"no object {stix_id} is stored")
        by_pk = {c.pk: c for c in snap.collections.values()}
        shown = [_version_card(snap, by_pk.get(v.collection_id), v) for v in versions]
        newest = max(shown, key=lambda v: v["row"].version_us, default=None)
        feedback = data_feedback.object_feedback(s, snap, stix_id)
        revisable = [
            {
                "row": v,
                "collection": by_pk[v.collection_id],
                "originator": snap.partners[v.originator_id].slug,
                "body": (edited or {}).get(by_pk[v.collection_id].uuid)
                or orjson.dumps(orjson.loads(v.raw), option=orjson.OPT_INDENT_2).decode(),
            }
            for v in revisions.revisable(snap, versions)
        ]
        body = render_template(
            "admin/object.html",
            stix_id=stix_id,
            versions=shown,
            newest=newest,
            archived=[(a, by_pk.get(a.collection_id)) for a in archived],
            withdrawn=withdrawn,
            audiences=preview.who_can_see(s, snap, stix_id),
            markings=snap.markings,
            recipients=data_records.recipients(s, snap, stix_id),
            recalls=withdrawals.recalls_of(s, stix_id),
            recall_form=recall_form or forms.RecallForm(),
            recall_error=error,
            feedback=feedback,
            chart=timeline.chart(feedback.per_day),
            revisable=revisable,
            revise_error=revise_error,
        )
    return body, 400 if error or revise_error else 200


def _version_card(snap: Any, collection: Any, v: Any) -> dict[str, Any]:
    """What the object page shows of one stored version: its facts, state, values and JSON."""
    obj = orjson.loads(v.raw)
    return {
        "row": v,
        "collection": collection,
        "name": stix_values.display_name(obj),
        "values": stix_values.observables(obj),
        "revoked": obj.get("revoked") is True,
        "valid_until": obj.get("valid_until") if isinstance(obj.get("valid_until"), str) else "",
        "withdrawn": formats.withdrawn(obj, clock.now_us()),
        "facts": preview.object_facts(snap, v),
        "blocklist": preview.blocklist_verdict(collection, v.raw),
        "warninglist": preview.warninglist_note(collection, v.raw),
        "json": orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode(),
    }


@bp.post("/objects/<stix_id>/recall")
def object_recall(stix_id: str) -> Any:
    hub = current_hub()
    form = forms.RecallForm()
    if not form.validate():
        return object_page(
            stix_id,
            form,
            "The recall was not recorded: "
            + "; ".join(f"{form[k].label.text}: {', '.join(v)}" for k, v in form.errors.items()),
        )
    if not form.confirm.data:
        return object_page(stix_id, form, "The recall was not recorded: tick the confirmation first.")
    with hub.session() as s:
        result = withdrawals.recall(
            s,
            hub.snapshot(s),
            stix_id,
            current_actor(),
            (form.reason.data or "").strip(),
            source=request.remote_addr or "",
        )
    who = ", ".join(result.recipients) or "nobody (no partner has received it)"
    flash(f"Recall recorded: {stix_id} is withdrawn from {who}; their feeds list it from their next poll.")
    return redirect(url_for("admin.object_detail", stix_id=stix_id))
