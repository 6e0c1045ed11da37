"""The panel's trust group and collection pages, and the sharing previews (as a partner, who sees an object)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from hub.admin import data_accounts, data_sharing, forms, preview
from hub.admin.blueprint import bp
from hub.admin.views import current_actor, current_hub, reading
from hub.errors import BadRequest, HubError

# --------------------------------------------------------------------- trust groups


@bp.get("/groups/")
def groups() -> str:
    hub = current_hub()
    with reading() as s:
        rows = data_sharing.groups(s, hub.snapshot(s))
    return render_template("admin/groups.html", rows=rows)


@bp.route("/groups/new", methods=["GET", "POST"], defaults={"slug": None})
@bp.route("/groups/<slug>/edit", methods=["GET", "POST"])
def group_edit(slug: str | None) -> Any:
    hub = current_hub()
    form = forms.GroupForm()
    if request.method == "GET" and slug is not None:
        with hub.session(write=False) as s:
            v = data_sharing.group_values(s, data_sharing.get_group(s, slug))
        form = forms.GroupForm(
            data={
                "slug": slug,
                "name": v["name"],
                "members": ", ".join(v["members"]),
                "countries": ", ".join(v["countries"]),
            }
        )
    if slug is not None:
        form.slug.data = slug
    impact = None
    if form.validate_on_submit():
        values = form.values()
        with hub.session(write=False) as s:
            snap = hub.snapshot(s)
            if slug is not None:
                data_sharing.get_group(s, slug)
                world = data_sharing.proposed_world(snap, slug, values["members"], values["countries"])
                impact = preview.what_if(s, snap, world=world)
        if impact and not form.confirm.data:
            return render_template(
                "admin/group_form.html", form=form, slug=slug, impact=impact, partners=_partner_slugs()
            ), 409
        try:
            with hub.session() as s:
                data_sharing.save_group(s, current_actor(), slug, values)
        except HubError as exc:
            form.members.errors.append(exc.message)
        else:
            flash(f"Trust group {values['slug']} saved.")
            return redirect(url_for("admin.groups"))
    status = 400 if form.errors else 200
    return render_template(
        "admin/group_form.html", form=form, slug=slug, impact=impact, partners=_partner_slugs()
    ), status


def _partner_slugs() -> list[str]:
    with current_hub().session(write=False) as s:
        return [r["row"].slug for r in data_accounts.partners(s)]


# --------------------------------------------------------------------- collections


@bp.get("/collections/")
def collections() -> str:
    with reading() as s:
        rows = data_sharing.collections(s)
    return render_template("admin/collections.html", rows=rows)


@bp.route("/collections/new", methods=["GET", "POST"], defaults={"uuid": None})
@bp.route("/collections/<uuid>/edit", methods=["GET", "POST"])
def collection_edit(uuid: str | None) -> Any:
    hub = current_hub()
    with hub.session(write=False) as s:
        root_choices = [forms.SelectChoice(r.slug, f"{r.slug}: {r.title}") for r in data_sharing.roots(s)]
        row = data_sharing.get_collection(s, uuid) if uuid else None
        if row is not None and row.is_reference:
            raise BadRequest("the reference collection is maintained by the hub and cannot be edited")
        current = None
        if row is not None:
            v = data_sharing.collection_values(row)
            current = {
                **v,
                "alias": row.alias,
                "types": ", ".join(v["types"]),
                "readers": ", ".join(v["readers"]),
                "writers": ", ".join(v["writers"]),
            }
            root_choices = [c for c in root_choices if c.value == hub.snapshot(s).collections[row.uuid].api_root]
    form = forms.CollectionForm(data=current) if request.method == "GET" and current else forms.CollectionForm()
    form.root.choices = root_choices
    if row is not None:
        form.alias.data, form.root.data = row.alias, root_choices[0].value
    if not root_choices:
        flash("There is no API root yet: create one with `cti-hub sharing apply` first.", "error")
    impact = None
    if form.validate_on_submit():
        values = form.values()
        try:
            with hub.session(write=False) as s:
                data_sharing.check_grants(s, values["readers"], "readers")
                data_sharing.check_grants(s, values["writers"], "writers")
                data_sharing.check_feedback(s, uuid, values)
                if uuid is not None:
                    impact = preview.what_if(
                        s, hub.snapshot(s), rules={uuid: data_sharing.collection_rules(uuid, values)}
                    )
            if impact and any(i.lost for i in impact) and not form.confirm.data:
                return render_template("admin/collection_form.html", form=form, uuid=uuid, impact=impact), 409
            with hub.session() as s:
                saved = data_sharing.save_collection(s, current_actor(), uuid, values)
                alias = saved.alias
        except HubError as exc:
            _field_of(form, exc.message).errors.append(exc.message)
        else:
            flash(f"Collection {alias} saved.")
            return redirect(url_for("admin.collections"))
    status = 400 if form.errors else 200
    return render_template("admin/collection_form.html", form=form, uuid=uuid, impact=impact), status


def _field_of(form: forms.CollectionForm, message: str) -> Any:
    """The field a refusal of the collection form is about (grants unless it names the feedback settings)."""
    if "feedback collection" in message:
        return form.is_feedback
    if message.startswith("false_positive_threshold"):
        return form.false_positive_threshold
    return form.readers


# --------------------------------------------------------------------- sharing preview


@bp.get("/preview")
def preview_as() -> Any:
    hub = current_hub()
    partner_slug = request.args.get("partner", "")
    collection_id = request.args.get("collection", "")
    show = request.args.get("show", "all")
    with reading() as s:
        snap = hub.snapshot(s)
        partners_ = sorted(p.slug for p in snap.partners.values() if p.kind != "hub")
        colls = sorted(snap.collections.values(), key=lambda c: (c.api_root, c.alias))
        verdicts, cut, error = None, False, None
        if partner_slug or collection_id:
            if partner_slug not in partners_:
                error = f"Choose a partner: '{partner_slug}' is not one." if partner_slug else "Choose a partner."
            elif collection_id not in snap.collections:
                error = "Choose a collection." if not collection_id else f"No collection '{collection_id}'."
            else:
                verdicts, cut = preview.view_as(s, snap, partner_slug, collection_id)
        body = render_template(
            "admin/preview.html",
            partners=partners_,
            collections=colls,
            partner=partner_slug,
            collection=collection_id,
            verdicts=verdicts,
            cut=cut,
            error=error,
            show=show,
            info=snap.collections.get(collection_id),
        )
    return body, 400 if error else 200


@bp.get("/who")
def who() -> Any:
    hub = current_hub()
    stix_id = request.args.get("id", "").strip()
    error, audiences = None, None
    with reading() as s:
        if stix_id:
            if "--" not in stix_id or len(stix_id) > 300:
                error = f"'{stix_id[:100]}' is not a STIX id (type--uuid)."
            else:
                audiences = preview.who_can_see(s, hub.snapshot(s), stix_id)
        body = render_template("admin/who.html", stix_id=stix_id, audiences=audiences, error=error)
    return body, 400 if error else 200
