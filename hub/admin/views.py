"""What every panel page shares: the hub and the actor, the template filters, the dashboard, unknown paths.

The pages themselves are thin views that validate a form, call one data or preview function, render:
:mod:`hub.admin.views_accounts` (log-in, partners, API keys), :mod:`hub.admin.views_sharing` (trust
groups, collections, sharing previews) and :mod:`hub.admin.views_records` (audit log, objects).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from flask import abort, current_app, render_template, request, session
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from hub.admin import dashboard as dashboard_data
from hub.admin import data_feedback, display
from hub.admin.blueprint import WAL_POSITION, bp, current_user
from hub.policy import TLP
from hub.runtime import Hub


def current_hub() -> Hub:
    """Return the hub the panel serves."""
    return current_app.extensions["cti_hub"]


def reading() -> AbstractContextManager[Session]:
    """A read-only transaction for a panel page: on a replica that holds this administrator's own last change.

    Forms and changes keep to the primary (``Hub.session``); see ``hub.replicas``.
    """
    return current_hub().reading(lsn=session.get(WAL_POSITION))


def current_actor() -> str:
    """Return the logged-in account's name, as the audit log records it."""
    return current_user()["name"]


@bp.app_template_filter("when")
def _when(us: int | None) -> str:
    return display.when(us) or "never"


@bp.app_template_filter("tlp")
def _tlp(level: int | TLP | None) -> str:
    return display.tlp_name(level)


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {"admin_user": current_user() if request.blueprint == "admin" else None}


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
    with reading() as s:
        snap = current_hub().snapshot(s)
        stats = dashboard_data.dashboard(s, snap)
        feedback = {
            "window": data_feedback.WINDOW_DAYS,
            "per_originator": data_feedback.received_per_originator(s, snap),
            "top": data_feedback.top_sighted(s, snap),
        }
    peak = max([n for days in stats["per_day"].values() for n in days.values()] or [1])
    return render_template("admin/dashboard.html", stats=stats, peak=peak, feedback=feedback)
