"""``cti-hub partners``, ``cti-hub keys`` and ``cti-hub admin``: partners, their API keys and the panel's accounts."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from hub import models as m
from hub import services, store
from hub.cli.tools import fail_cleanly as _fail_cleanly
from hub.cli.tools import hub_of as _hub
from hub.policy import TLP

# --------------------------------------------------------------------- partners and keys


@click.group("partners")
def partners() -> None:
    """Partner organisations."""


@partners.command("list")
@click.pass_context
@_fail_cleanly
def partners_list(ctx: click.Context) -> None:
    """List partners with country, kind, clearance and state."""
    with _hub(ctx).session() as session:
        rows = session.scalars(select(m.Partner).where(m.Partner.kind != "hub").order_by(m.Partner.slug)).all()
    click.echo(f"{'PARTNER':<14} {'COUNTRY':<8} {'KIND':<11} {'CLEARANCE':<13} {'STATE':<10} NAME")
    for p in rows:
        state = "active" if p.active else "suspended"
        click.echo(f"{p.slug:<14} {p.country:<8} {p.kind:<11} {TLP(p.clearance).label:<13} {state:<10} {p.name}")


@click.group("keys")
def keys() -> None:
    """API keys for partners."""


@keys.command("create")
@click.argument("partner")
@click.option("--read-only", is_flag=True, help="The key may read but never publish.")
@click.option("--expires-days", type=int, help="The key stops working after N days.")
@click.option("--cidr", multiple=True, help="Only accept the key from this network (repeatable).")
@click.option("--label", default="", help="A note to recognise the key by.")
@click.pass_context
@_fail_cleanly
def keys_create(
    ctx: click.Context, partner: str, read_only: bool, expires_days: int | None, cidr: tuple[str, ...], label: str
) -> None:
    """Issue a key for PARTNER; the secret is printed once, alone on the last line."""
    hub = _hub(ctx)
    with hub.session() as session:
        key_id, secret = services.create_key(
            session,
            hub.pepper,
            partner,
            read_only=read_only,
            expires_days=expires_days,
            cidrs=",".join(cidr),
            label=label,
        )
    click.echo(f"key {key_id} for {partner} (store the secret now: it is not kept and cannot be shown again)", err=True)
    click.echo(secret)


@keys.command("list")
@click.option("--partner", help="Only this partner's keys.")
@click.pass_context
@_fail_cleanly
def keys_list(ctx: click.Context, partner: str | None) -> None:
    """List keys (never their secrets)."""
    stmt = select(m.ApiKey, m.Partner.slug).join(m.Partner).order_by(m.Partner.slug, m.ApiKey.created_us)
    if partner:
        stmt = stmt.where(m.Partner.slug == partner)
    with _hub(ctx).session() as session:
        rows = session.execute(stmt).all()
    click.echo(f"{'KEY':<15} {'PARTNER':<14} {'STATE':<9} {'MODE':<10} {'EXPIRES':<12} {'LAST USED':<20} LABEL")
    now = store.now_us()
    for key, slug in rows:
        state = "revoked" if key.revoked_us else "expired" if key.expires_us and key.expires_us <= now else "active"
        mode = "read-only" if key.read_only else "read-write"
        click.echo(
            f"{key.key_id:<15} {slug:<14} {state:<9} {mode:<10} {_day(key.expires_us):<12} "
            f"{_day(key.last_used_us, seconds=True):<20} {key.label}"
        )


def _day(us: int | None, *, seconds: bool = False) -> str:
    if us is None:
        return "-"
    from hub import stix

    text = stix.format_timestamp(us)
    return text[:19].replace("T", " ") if seconds else text[:10]


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
@_fail_cleanly
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key; it fails from the next request on."""
    with _hub(ctx).session() as session:
        services.revoke_key(session, key_id)
        store.bump_rules(session)
    click.echo(f"key {key_id} revoked")


# --------------------------------------------------------------------- admin accounts


@click.group("admin")
def admin() -> None:
    """Administrator accounts for the web panel."""


@admin.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--role", type=click.Choice(["admin", "auditor"]), default="admin", show_default=True)
@click.pass_context
@_fail_cleanly
def admin_create(ctx: click.Context, username: str, password_stdin: bool, role: str) -> None:
    """Create an administrator (argon2-hashed password)."""
    password = sys.stdin.readline().rstrip("\n")
    with _hub(ctx).session() as session:
        services.create_admin(session, username, password, role)
    click.echo(f"{role} {username} created")
