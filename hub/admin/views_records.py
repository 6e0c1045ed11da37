"""The panel's audit log and object pages, and an object's recall."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, flash, redirect, render_template, request, url_for

from hub import withdrawals
from hub.admin import data_records, forms, preview
from hub.admin.blueprint import bp
from hub.admin.views import current_actor, current_hub, reading
from hub.errors import BadRequest, NotFound


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


@bp.get("/objects/")
def objects() -> Any:
    a = request.args
    q = data_records.ObjectSearch(
        **{k: a.get(k, "").strip() for k in ("id", "type", "partner", "tlp", "text", "collection")}
    )
    page, error = _page(), None
    hub = current_hub()
    with reading() as s:
        snap = hub.snapshot(s)
        try:
            rows, more = data_records.search_objects(s, snap, q, page)
        except (BadRequest, ValueError) as exc:
            rows, more, error = [], False, getattr(exc, "message", str(exc))
        by_pk = {c.pk: c for c in snap.collections.values()}
        body = render_template(
            "admin/objects.html",
            rows=rows,
            more=more,
            page=page,
            q=q,
            error=error,
            types=data_records.object_types(s),
            partners=sorted(snap.by_slug),
            collections=sorted(snap.collections.values(), key=lambda c: (c.api_root, c.alias)),
            by_pk=by_pk,
            originator={pk: p.slug for pk, p in snap.partners.items()},
        )
    return body, 400 if error else 200


@bp.get("/objects/<stix_id>")
def object_detail(stix_id: str) -> Any:
    return _object_page(stix_id, forms.RecallForm())


def _object_page(stix_id: str, recall_form: forms.RecallForm, error: str | None = None) -> Any:
    hub = current_hub()
    with reading() as s:
        snap = hub.snapshot(s)
        versions = data_records.object_versions(s, stix_id)
        if not versions:
            raise NotFound(f"no object {stix_id} is stored")
        by_pk = {c.pk: c for c in snap.collections.values()}
        shown = [
            {
                "row": v,
                "collection": by_pk.get(v.collection_id),
                "facts": preview.object_facts(snap, v),
                "blocklist": preview.blocklist_verdict(by_pk.get(v.collection_id), v.raw),
                "warninglist": preview.warninglist_note(by_pk.get(v.collection_id), v.raw),
                "json": orjson.dumps(orjson.loads(v.raw), option=orjson.OPT_INDENT_2).decode(),
            }
            for v in versions
        ]
        audiences = preview.who_can_see(s, snap, stix_id)
        body = render_template(
            "admin/object.html",
            stix_id=stix_id,
            versions=shown,
            audiences=audiences,
            markings=snap.markings,
            recipients=data_records.recipients(s, snap, stix_id),
            recalls=withdrawals.recalls_of(s, stix_id),
            recall_form=recall_form,
            recall_error=error,
        )
    return body, 400 if error else 200


@bp.post("/objects/<stix_id>/recall")
def object_recall(stix_id: str) -> Any:
    hub = current_hub()
    form = forms.RecallForm()
    if not form.validate():
        return _object_page(
            stix_id,
            form,
            "The recall was not recorded: "
            + "; ".join(f"{form[k].label.text}: {', '.join(v)}" for k, v in form.errors.items()),
        )
    if not form.confirm.data:
        return _object_page(stix_id, form, "The recall was not recorded: tick the confirmation first.")
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
