"""``cti-hub feedback``: the sightings and false-positive reports partners posted (see :mod:`hub.feedback`)."""

from __future__ import annotations

import click

from hub import stix
from hub.cli.tools import fail_cleanly, hub_of
from hub.store import feedback as store


@click.group("feedback")
def feedback_group() -> None:
    """Sightings and false-positive reports flowing back to the originators."""


@feedback_group.command("list")
@click.option("--originator", help="Only feedback about this partner's objects (its id, e.g. krcert).")
@click.option("--since", help="Only feedback stored after this RFC 3339 time.")
@click.pass_context
@fail_cleanly
def feedback_list(ctx: click.Context, originator: str | None, since: str | None) -> None:
    """List feedback versions, oldest first: what, by whom, about which object of which originator.

    STATE is current (counted), superseded (a newer version replaced it), revoked or deleted.
    """
    since_us = None
    if since:
        try:
            since_us = stix.parse_filter_timestamp(since)
        except ValueError:
            raise click.ClickException(f"--since: {since!r} is not an RFC 3339 timestamp") from None
    hub = hub_of(ctx, migrate=False)
    with hub.session(write=False) as session:
        snap = hub.snapshot(session)
        originator_pk = None
        if originator is not None:
            if originator not in snap.by_slug:
                raise click.ClickException(f"--originator: no partner {originator!r} (see `cti-hub partners list`)")
            originator_pk = snap.by_slug[originator]
        rows = store.listing(session, originator_pk=originator_pk, since_us=since_us)
    slug = {pk: row.slug for pk, row in snap.partner_rows.items()}
    click.echo(
        f"{'STORED':<20} {'KIND':<15} {'REPORTER':<14} {'ORIGINATOR':<14} {'COUNT':>6} {'SHARE':<9} {'STATE':<10} "
        "ABOUT / FEEDBACK"
    )
    for r in rows:
        state = (
            "deleted" if r.stored is None else "superseded" if r.newer_exists else "revoked" if r.revoked else "current"
        )
        at = stix.format_timestamp(r.added_us)[:19].replace("T", " ")
        click.echo(
            f"{at:<20} {r.kind:<15} {slug.get(r.reporter_id, '?'):<14} {slug.get(r.target_originator_id, '?'):<14} "
            f"{r.count:>6} {'full' if r.shared else 'counts':<9} {state:<10} {r.target_id} {r.stix_id}"
        )
