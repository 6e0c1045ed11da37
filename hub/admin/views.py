"""The panel's pages: thin views that validate a form, call one data or preview function, render."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin

import orjson
from flask import Response, abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from hub import accounts, policy, withdrawals
from hub.admin import dashboard as dashboard_data
from hub.admin import data, forms, preview
from hub.admin.blueprint import bp, current_user
from hub.errors import BadRequest, HubError, NotFound
from hub.models import split_list
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import auditlog, clock, snapshots


def _hub() -> Hub:
    return current_app.extensions["cti_hub"]


def _actor() -> str:
    return current_user()["name"]


def _page() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 10_000))
    except ValueError:
        return 1


@bp.app_template_filter("when")
def _when(us: int | None) -> str:
    return data.when(us) or "never"


@bp.app_template_filter("tlp")
def _tlp(level: int | TLP | None) -> str:
    return data.tlp_name(level)


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {"admin_user": current_user() if request.blueprint == "admin" else None}


# --------------------------------------------------------------------- login


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = forms.LoginForm()
    error = "Your session expired after inactivity: log in again." if request.args.get("expired") else None
    if form.validate_on_submit():
        with _hub().session() as s:
            user, error = data.login(s, form.username.data, form.password.data, request.remote_addr or "")
        if user is None:
            return render_template("admin/login.html", form=form, error=error), 401
        session.clear()
        session.permanent = True
        session["user"] = user
        session["seen"] = int(time.time())
        session["since"] = clock.now_us()  # a logout after this moment ends the session (data.account)
        target = request.args.get("next", "")
        if not target.startswith("/admin/") or "\\" in target or not target.isprintable():
            target = url_for("admin.dashboard")
        return redirect(target)
    return render_template("admin/login.html", form=form, error=error)


@bp.post("/logout")
def logout() -> Any:
    with _hub().session() as s:
        auditlog.audit(s, _actor(), "admin.logout", _actor(), source=request.remote_addr or "")
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("admin.login"))


@bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(_rest: str) -> Any:
    """Answer unknown panel paths and methods with HTML pages (the app-wide handlers speak TAXII JSON)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    for method in ("GET", "POST"):
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != "admin.unknown":
            abort(405, f"This page does not take {request.method} requests.")
    abort(404, "There is no such page in the panel.")


# --------------------------------------------------------------------- dashboard


@bp.get("/")
def dashboard() -> str:
    with _hub().session(write=False) as s:
        snap = _hub().snapshot(s)
        stats = dashboard_data.dashboard(s, snap)
    peak = max([n for days in stats["per_day"].values() for n in days.values()] or [1])
    return render_template("admin/dashboard.html", stats=stats, peak=peak)


# --------------------------------------------------------------------- partners


@bp.get("/partners/")
def partners() -> str:
    with _hub().session(write=False) as s:
        rows = data.partners(s)
    return render_template("admin/partners.html", rows=rows)


@bp.route("/partners/new", methods=["GET", "POST"])
def partner_new() -> Any:
    form = forms.PartnerForm()
    if form.validate_on_submit():
        try:
            with _hub().session() as s:
                row = data.save_partner(s, _actor(), None, form.values())
                slug = row.slug
        except HubError as exc:
            form.slug.errors.append(exc.message)
        else:
            flash(f"Partner {slug} created. Next: issue it an API key and add it to trust groups.")
            return redirect(url_for("admin.partner", slug=slug))
    return render_template("admin/partner_form.html", form=form, partner=None), 400 if form.errors else 200


@bp.get("/partners/<slug>")
def partner(slug: str) -> str:
    hub = _hub()
    with hub.session(write=False) as s:
        row = data.get_partner(s, slug)
        keys = data.keys_of(s, row.id)
        depends = data.dependents_of_partner(s, row)
        snap = hub.snapshot(s)
        access = _access(snap, slug)
        groups = sorted(snap.world.groups_of(snap.partner(slug)))
    return render_template(
        "admin/partner.html",
        p=row,
        keys=keys,
        depends=depends,
        access=access,
        groups=groups,
        key_form=forms.KeyForm(),
        action=forms.ActionForm(),
        now_us=clock.now_us(),
    )


def _access(snap: snapshots.Snapshot, slug: str) -> list[dict[str, Any]]:
    """The collections a partner reads or writes, with their TAXII URLs."""
    p = snap.partner(slug)
    out = []
    for info in sorted(snap.collections.values(), key=lambda c: (c.api_root, c.alias)):
        reads = snap.world.granted(info.rules.readers, p)
        writes = snap.world.granted(info.rules.writers, p)
        if reads or writes:
            out.append(
                {
                    "info": info,
                    "reads": reads,
                    "writes": writes,
                    "url": urljoin(_base(), f"{info.api_root}/collections/{info.uuid}/"),
                }
            )
    return out


def _base() -> str:
    public = _hub().settings.get("public_url") or request.url_root
    return public.rstrip("/") + "/"


@bp.route("/partners/<slug>/edit", methods=["GET", "POST"])
def partner_edit(slug: str) -> Any:
    with _hub().session(write=False) as s:
        row = data.get_partner(s, slug)
        current = {**data.partner_values(row), "slug": row.slug}
    form = forms.PartnerForm(data=current)
    if request.method == "POST":
        form = forms.PartnerForm()
        form.slug.data = slug  # the id never changes: objects and keys refer to it
    impact = None
    if form.validate_on_submit():
        values = form.values()
        with _hub().session(write=False) as s:
            snap = _hub().snapshot(s)
            before = snap.partner(slug)
            after = policy.Partner(
                before.id,
                slug,
                values["country"],
                policy.TLP.parse(values["clearance"]),
                values["active"],
                values["kind"],
                acs_organization=values["acs_organization"],
                acs_shareability=frozenset(split_list(values["acs_shareability"])),
                acs_entity=frozenset(split_list(values["acs_entity"])),
            )
            impact = preview.what_if(s, snap, partners={before.id: after})
        if impact and not form.confirm.data:
            return render_template("admin/partner_form.html", form=form, partner=slug, impact=impact), 409
        with _hub().session() as s:
            data.save_partner(s, _actor(), slug, values)
        flash(f"Partner {slug} saved.")
        return redirect(url_for("admin.partner", slug=slug))
    return render_template(
        "admin/partner_form.html", form=form, partner=slug, impact=impact
    ), 400 if form.errors else 200


@bp.post("/partners/<slug>/suspend")
def partner_suspend(slug: str) -> Any:
    with _hub().session() as s:
        data.set_partner_active(s, _actor(), slug, False)
    flash(f"Partner {slug} suspended: its keys are refused from the next request on.")
    return redirect(url_for("admin.partner", slug=slug))


@bp.post("/partners/<slug>/reactivate")
def partner_reactivate(slug: str) -> Any:
    with _hub().session() as s:
        data.set_partner_active(s, _actor(), slug, True)
    flash(f"Partner {slug} reactivated.")
    return redirect(url_for("admin.partner", slug=slug))


@bp.post("/partners/<slug>/keys")
def key_issue(slug: str) -> Any:
    hub = _hub()
    form = forms.KeyForm()
    if not form.validate():
        flash(
            "The key was not issued: "
            + "; ".join(f"{form[k].label.text}: {', '.join(v)}" for k, v in form.errors.items()),
            "error",
        )
        return redirect(url_for("admin.partner", slug=slug))
    try:
        with hub.session() as s:
            data.get_partner(s, slug)
            key_id, secret = accounts.create_key(
                s,
                hub.pepper,
                slug,
                read_only=bool(form.read_only.data),
                expires_days=form.expires_days.data,
                cidrs=form.cidrs.data or "",
                label=form.label.data or "",
                actor=_actor(),
                cert_sha256=form.cert_sha256.data or "",
            )
    except BadRequest as exc:
        flash(f"The key was not issued: {exc.message}", "error")
        return redirect(url_for("admin.partner", slug=slug))
    with hub.session(write=False) as s:
        access = _access(hub.snapshot(s), slug)
    # The examples use the first ordinary collection the partner reads, not the reference data.
    first = next((a for a in access if a["reads"] and not a["info"].is_reference), access[0] if access else None)
    return render_template(
        "admin/key_issued.html", slug=slug, key_id=key_id, secret=secret, access=access, first=first, base=_base()
    )


@bp.post("/keys/<key_id>/revoke")
def key_revoke(key_id: str) -> Any:
    with _hub().session() as s:
        slug = data.key_partner(s, key_id)
        accounts.revoke_key(s, key_id, actor=_actor())
    flash(f"Key {key_id} revoked: it is refused from the next request on.")
    return redirect(url_for("admin.partner", slug=slug))


# --------------------------------------------------------------------- trust groups


@bp.get("/groups/")
def groups() -> str:
    hub = _hub()
    with hub.session(write=False) as s:
        rows = data.groups(s, hub.snapshot(s))
    return render_template("admin/groups.html", rows=rows)


@bp.route("/groups/new", methods=["GET", "POST"], defaults={"slug": None})
@bp.route("/groups/<slug>/edit", methods=["GET", "POST"])
def group_edit(slug: str | None) -> Any:
    hub = _hub()
    form = forms.GroupForm()
    if request.method == "GET" and slug is not None:
        with hub.session(write=False) as s:
            v = data.group_values(s, data.get_group(s, slug))
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
                data.get_group(s, slug)
                world = data.proposed_world(snap, slug, values["members"], values["countries"])
                impact = preview.what_if(s, snap, world=world)
        if impact and not form.confirm.data:
            return render_template(
                "admin/group_form.html", form=form, slug=slug, impact=impact, partners=_partner_slugs()
            ), 409
        try:
            with hub.session() as s:
                data.save_group(s, _actor(), slug, values)
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
    with _hub().session(write=False) as s:
        return [r["row"].slug for r in data.partners(s)]


# --------------------------------------------------------------------- collections


@bp.get("/collections/")
def collections() -> str:
    with _hub().session(write=False) as s:
        rows = data.collections(s)
    return render_template("admin/collections.html", rows=rows)


@bp.route("/collections/new", methods=["GET", "POST"], defaults={"uuid": None})
@bp.route("/collections/<uuid>/edit", methods=["GET", "POST"])
def collection_edit(uuid: str | None) -> Any:
    hub = _hub()
    with hub.session(write=False) as s:
        root_choices = [forms.SelectChoice(r.slug, f"{r.slug}: {r.title}") for r in data.roots(s)]
        row = data.get_collection(s, uuid) if uuid else None
        if row is not None and row.is_reference:
            raise BadRequest("the reference collection is maintained by the hub and cannot be edited")
        current = None
        if row is not None:
            v = data.collection_values(row)
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
                data.check_grants(s, values["readers"], "readers")
                data.check_grants(s, values["writers"], "writers")
                if uuid is not None:
                    impact = preview.what_if(s, hub.snapshot(s), rules={uuid: data.collection_rules(uuid, values)})
            if impact and any(i.lost for i in impact) and not form.confirm.data:
                return render_template("admin/collection_form.html", form=form, uuid=uuid, impact=impact), 409
            with hub.session() as s:
                saved = data.save_collection(s, _actor(), uuid, values)
                alias = saved.alias
        except HubError as exc:
            form.readers.errors.append(exc.message)
        else:
            flash(f"Collection {alias} saved.")
            return redirect(url_for("admin.collections"))
    status = 400 if form.errors else 200
    return render_template("admin/collection_form.html", form=form, uuid=uuid, impact=impact), status


# --------------------------------------------------------------------- sharing preview


@bp.get("/preview")
def preview_as() -> Any:
    hub = _hub()
    partner_slug = request.args.get("partner", "")
    collection_id = request.args.get("collection", "")
    show = request.args.get("show", "all")
    with hub.session(write=False) as s:
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
    hub = _hub()
    stix_id = request.args.get("id", "").strip()
    error, audiences = None, None
    with hub.session(write=False) as s:
        if stix_id:
            if "--" not in stix_id or len(stix_id) > 300:
                error = f"'{stix_id[:100]}' is not a STIX id (type--uuid)."
            else:
                audiences = preview.who_can_see(s, hub.snapshot(s), stix_id)
        body = render_template("admin/who.html", stix_id=stix_id, audiences=audiences, error=error)
    return body, 400 if error else 200


# --------------------------------------------------------------------- audit


def _audit_filter() -> data.AuditFilter:
    a = request.args
    return data.AuditFilter(
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
    with _hub().session(write=False) as s:
        try:
            rows, more = data.audit_page(s, f, page)
        except BadRequest as exc:
            rows, more, error = [], False, exc.message
        actions = data.audit_actions(s)
    return render_template(
        "admin/audit.html", rows=rows, more=more, page=page, f=f, actions=actions, error=error
    ), 400 if error else 200


@bp.get("/audit.csv")
def audit_csv() -> Any:
    with _hub().session(write=False) as s:
        body = data.audit_csv(s, _audit_filter())
    return Response(
        body, mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=cti-hub-audit.csv"}
    )


# --------------------------------------------------------------------- objects


@bp.get("/objects/")
def objects() -> Any:
    a = request.args
    q = data.ObjectSearch(**{k: a.get(k, "").strip() for k in ("id", "type", "partner", "tlp", "text", "collection")})
    page, error = _page(), None
    hub = _hub()
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        try:
            rows, more = data.search_objects(s, snap, q, page)
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
            types=data.object_types(s),
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
    hub = _hub()
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        versions = data.object_versions(s, stix_id)
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
            recipients=data.recipients(s, snap, stix_id),
            recalls=withdrawals.recalls_of(s, stix_id),
            recall_form=recall_form,
            recall_error=error,
        )
    return body, 400 if error else 200


@bp.post("/objects/<stix_id>/recall")
def object_recall(stix_id: str) -> Any:
    hub = _hub()
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
            s, hub.snapshot(s), stix_id, _actor(), (form.reason.data or "").strip(), source=request.remote_addr or ""
        )
    who = ", ".join(result.recipients) or "nobody (no partner has received it)"
    flash(f"Recall recorded: {stix_id} is withdrawn from {who}; their feeds list it from their next poll.")
    return redirect(url_for("admin.object_detail", stix_id=stix_id))
