"""The panel's log-in, partner and API key pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from flask import flash, redirect, render_template, request, session, url_for

from hub import accounts, policy
from hub.admin import data_accounts, forms, preview
from hub.admin.blueprint import bp, log_in
from hub.admin.views import current_actor, current_hub, reading
from hub.errors import BadRequest, HubError
from hub.models import split_list
from hub.store import auditlog, clock, snapshots

# --------------------------------------------------------------------- login


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = forms.LoginForm()
    error = "Your session expired after inactivity: log in again." if request.args.get("expired") else None
    if form.validate_on_submit():
        with current_hub().session() as s:
            user, error = data_accounts.login(
                s,
                form.username.data,
                form.password.data,
                request.remote_addr or "",
                mfa_required=bool(current_hub().settings["admin_mfa_required"]),
            )
        if user is None:
            return render_template("admin/login.html", form=form, error=error), 401
        return log_in(user, request.args.get("next", ""))
    return render_template("admin/login.html", form=form, error=error)


@bp.post("/logout")
def logout() -> Any:
    with current_hub().session() as s:
        auditlog.audit(s, current_actor(), "admin.logout", current_actor(), source=request.remote_addr or "")
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("admin.login"))


# --------------------------------------------------------------------- partners


@bp.get("/partners/")
def partners() -> str:
    with reading() as s:
        rows = data_accounts.partners(s)
    return render_template("admin/partners.html", rows=rows)


@bp.route("/partners/new", methods=["GET", "POST"])
def partner_new() -> Any:
    form = forms.PartnerForm()
    if form.validate_on_submit():
        try:
            with current_hub().session() as s:
                row = data_accounts.save_partner(s, current_actor(), None, form.values())
                slug = row.slug
        except HubError as exc:
            form.slug.errors.append(exc.message)
        else:
            flash(f"Partner {slug} created. Next: issue it an API key and add it to trust groups.")
            return redirect(url_for("admin.partner", slug=slug))
    return render_template("admin/partner_form.html", form=form, partner=None), 400 if form.errors else 200


@bp.get("/partners/<slug>")
def partner(slug: str) -> str:
    hub = current_hub()
    with reading() as s:
        row = data_accounts.get_partner(s, slug)
        keys = data_accounts.keys_of(s, row.id)
        depends = data_accounts.dependents_of_partner(s, row)
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
    public = current_hub().settings.get("public_url") or request.url_root
    return public.rstrip("/") + "/"


@bp.route("/partners/<slug>/edit", methods=["GET", "POST"])
def partner_edit(slug: str) -> Any:
    with current_hub().session(write=False) as s:
        row = data_accounts.get_partner(s, slug)
        current = {**data_accounts.partner_values(row), "slug": row.slug}
    form = forms.PartnerForm(data=current)
    if request.method == "POST":
        form = forms.PartnerForm()
        form.slug.data = slug  # the id never changes: objects and keys refer to it
    impact = None
    if form.validate_on_submit():
        values = form.values()
        with current_hub().session(write=False) as s:
            snap = current_hub().snapshot(s)
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
        with current_hub().session() as s:
            data_accounts.save_partner(s, current_actor(), slug, values)
        flash(f"Partner {slug} saved.")
        return redirect(url_for("admin.partner", slug=slug))
    return render_template(
        "admin/partner_form.html", form=form, partner=slug, impact=impact
    ), 400 if form.errors else 200


@bp.post("/partners/<slug>/suspend")
def partner_suspend(slug: str) -> Any:
    with current_hub().session() as s:
        data_accounts.set_partner_active(s, current_actor(), slug, False)
    flash(f"Partner {slug} suspended: its keys are refused from the next request on.")
    return redirect(url_for("admin.partner", slug=slug))


@bp.post("/partners/<slug>/reactivate")
def partner_reactivate(slug: str) -> Any:
    with current_hub().session() as s:
        data_accounts.set_partner_active(s, current_actor(), slug, True)
    flash(f"Partner {slug} reactivated.")
    return redirect(url_for("admin.partner", slug=slug))


@bp.post("/partners/<slug>/keys")
def key_issue(slug: str) -> Any:
    hub = current_hub()
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
            data_accounts.get_partner(s, slug)
            key_id, secret = accounts.create_key(
                s,
                hub.pepper,
                slug,
                read_only=bool(form.read_only.data),
                expires_days=form.expires_days.data,
                cidrs=form.cidrs.data or "",
                label=form.label.data or "",
                actor=current_actor(),
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
    with current_hub().session() as s:
        slug = data_accounts.key_partner(s, key_id)
        accounts.revoke_key(s, key_id, actor=current_actor())
    flash(f"Key {key_id} revoked: it is refused from the next request on.")
    return redirect(url_for("admin.partner", slug=slug))
