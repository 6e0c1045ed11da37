"""The ``cti-hub`` command line: one click group; every failure is one line on stderr and exit 1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from sqlalchemy import select

from hub import __version__, services, store
from hub import models as m
from hub.clitools import fail_cleanly as _fail_cleanly
from hub.clitools import hub_of as _hub
from hub.policy import TLP


@click.group()
@click.version_option(__version__)
@click.option("--config", type=click.Path(dir_okay=False), envvar="HUB_CONFIG",
              help="Settings file (TOML); defaults to HUB_* environment variables only.")
def main(config: str | None) -> None:
    """Run and administer a cti-hub TAXII 2.1 sharing hub."""


# --------------------------------------------------------------------- db


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.pass_context
@_fail_cleanly
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations (safe to run on every start)."""
    hub = _hub(ctx)
    click.echo(f"database at {hub.engine.url.render_as_string(hide_password=True)} is up to date")


# --------------------------------------------------------------------- sharing


@main.group()
def sharing() -> None:
    """Partners, trust groups and collections from a YAML file."""


@sharing.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.pass_context
@_fail_cleanly
def sharing_apply(ctx: click.Context, file: str, dry_run: bool) -> None:
    """Make the database match FILE (idempotent); print each change."""
    from hub import sharing_config

    spec = sharing_config.load(file)
    with _hub(ctx).session() as session:
        changes = sharing_config.plan(session, spec) if dry_run else sharing_config.apply(session, spec)
    for change in changes:
        click.echo(str(change))
    verb = "would change" if dry_run else "changed"
    click.echo(f"{len(changes)} {verb}" if changes else "nothing to change: the database matches the file")


@sharing.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.pass_context
@_fail_cleanly
def sharing_export(ctx: click.Context, output: str | None) -> None:
    """Write the current sharing configuration as YAML."""
    from hub import sharing_config

    with _hub(ctx).session() as session:
        text = sharing_config.export(session)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


# --------------------------------------------------------------------- partners and keys


@main.group()
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


@main.group()
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
def keys_create(ctx: click.Context, partner: str, read_only: bool, expires_days: int | None,
                cidr: tuple[str, ...], label: str) -> None:
    """Issue a key for PARTNER; the secret is printed once, alone on the last line."""
    hub = _hub(ctx)
    with hub.session() as session:
        key_id, secret = services.create_key(session, hub.pepper, partner, read_only=read_only,
                                             expires_days=expires_days, cidrs=",".join(cidr), label=label)
    click.echo(f"key {key_id} for {partner} (store the secret now: it is not kept and cannot be shown again)",
               err=True)
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
        click.echo(f"{key.key_id:<15} {slug:<14} {state:<9} {mode:<10} {_day(key.expires_us):<12} "
                   f"{_day(key.last_used_us, seconds=True):<20} {key.label}")


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


@main.group()
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


# --------------------------------------------------------------------- serve and demo


KEEP_ALIVE_SECONDS = 75


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@click.pass_context
@_fail_cleanly
def serve(ctx: click.Context, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the hub with gunicorn (migrations are applied first)."""
    _hub(ctx)
    args = ["gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers), "--worker-class", "gthread",
            "--threads", str(threads), "--timeout", "120",
            # Idle keep-alive connections stay open longer than pollers and load balancers pause between
            # requests (gunicorn's 2 s default races clients that reuse a connection it is closing).
            # No gunicorn access log: the hub writes one JSON line per request itself (hub.access).
            "--keep-alive", str(KEEP_ALIVE_SECONDS), "hub.wsgi:app"]
    click.echo(f"serving on http://{host}:{port}/taxii2/ with {workers} workers", err=True)
    os.execvp(sys.executable, [sys.executable, "-m", *args])  # noqa: S606 - replace this process with gunicorn


@main.command()
@click.option("--file", "file", default="config/sharing.yaml", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="The sharing configuration to apply.")
@click.option("--objects", default=2000, show_default=True, help="Demo indicators to load on first run.")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="Where the hub will listen.")
@click.pass_context
@_fail_cleanly
def demo(ctx: click.Context, file: str, objects: int, url: str) -> None:
    """Set up a demo hub: apply FILE, load DPRK demo indicators, issue keys, print how to connect."""
    from hub import demo as demo_module

    hub = _hub(ctx)
    demo_module.run(hub, file, objects, url, echo=click.echo)


from feeds.cli import actors, feeds  # noqa: E402 - the feeds commands plug into this group

main.add_command(feeds)
main.add_command(actors)

from hub.ops_cli import audit_group, backup, ledger_group, recall, restore  # noqa: E402 - registered after main exists

main.add_command(audit_group)
main.add_command(ledger_group)
main.add_command(recall)
main.add_command(backup)
main.add_command(restore)

from hub.ops_cli import retention_group  # noqa: E402 - registered after main exists

main.add_command(retention_group)


if __name__ == "__main__":  # pragma: no cover
    main()
