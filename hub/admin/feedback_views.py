"""The panel's feedback pages and an originator's actions on an object.

What a partner sent back (its sightings and false-positive reports) is a page of its own; an object's
feedback (timeline, tables) is on the object page (:mod:`hub.admin.views_records`), whose revoke and
new-version forms post here and go through :mod:`hub.revisions`.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from hub import revisions
from hub.admin import data_accounts, data_feedback, forms
from hub.admin.blueprint import bp, current_user
from hub.admin.views import current_actor, current_hub, reading
from hub.admin.views_records import object_page
from hub.errors import HubError


def _form_error(form: Any) -> str:
    return "; ".join(f"{form[k].label.text or k}: {', '.join(v)}" for k, v in form.errors.items())


@bp.post("/objects/<stix_id>/revoke")
def object_revoke(stix_id: str) -> Any:
    form = forms.RevokeForm()
    if not form.validate():
        return object_page(stix_id, revise_error="The object was not revoked: " + _form_error(form))
    if not form.confirm.data:
        return object_page(stix_id, revise_error="The object was not revoked: tick the confirmation first.")
    try:
        done = revisions.revoke(
            current_hub(),
            stix_id,
            form.collection.data,
            current_actor(),
            current_user()["role"],
            source=request.remote_addr or "",
        )
    except HubError as exc:
        page = object_page(stix_id, revise_error="The object was not revoked: " + exc.message)
        return page[0], exc.status
    flash(f"Revoked: {done.originator}'s version {done.version} of {stix_id} in {done.collection} revokes it.")
    return redirect(url_for("admin.object_detail", stix_id=stix_id))


@bp.post("/objects/<stix_id>/new-version")
def object_new_version(stix_id: str) -> Any:
    form = forms.NewVersionForm()
    edited = {form.collection.data or "": form.body.data or ""}
    if not form.validate():
        return object_page(stix_id, revise_error="No new version was published: " + _form_error(form), edited=edited)
    try:
        done = revisions.new_version(
            current_hub(),
            stix_id,
            form.collection.data,
            form.body.data,
            current_actor(),
            current_user()["role"],
            source=request.remote_addr or "",
        )
    except HubError as exc:
        page = object_page(stix_id, revise_error="No new version was published: " + exc.message, edited=edited)
        return page[0], exc.status
    flash(f"New version published: {done.originator}'s version {done.version} of {stix_id} in {done.collection}.")
    return redirect(url_for("admin.object_detail", stix_id=stix_id))


@bp.get("/partners/<slug>/feedback")
def partner_feedback(slug: str) -> str:
    try:
        page = max(1, min(int(request.args.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    hub = current_hub()
    with reading() as s:
        row = data_accounts.get_partner(s, slug)
        sent = data_feedback.sent_by(s, hub.snapshot(s), row.id, page)
    return render_template("admin/partner_feedback.html", p=row, sent=sent, page=page, cap=data_feedback.SCAN_CAP)
