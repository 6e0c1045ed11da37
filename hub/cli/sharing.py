"""``cti-hub db`` and ``cti-hub sharing``: the schema and the sharing configuration."""

from __future__ import annotations

from pathlib import Path

import click

from hub import sharing as config
from hub.cli.progress import reporter
from hub.cli.tools import fail_cleanly as _fail_cleanly
from hub.cli.tools import hub_of as _hub

# --------------------------------------------------------------------- db


@click.group("db")
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


@click.group("sharing")
def sharing() -> None:
    """Partners, trust groups and collections from a YAML file."""


@sharing.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.pass_context
@_fail_cleanly
def sharing_apply(ctx: click.Context, file: str, dry_run: bool) -> None:
    """Make the database match FILE (idempotent); print each change."""
    spec = config.load(file)
    hub = _hub(ctx)
    with reporter(ctx, "sharing apply") as report, hub.session() as session:
        changes = config.plan(session, spec) if dry_run else config.apply(session, spec, progress=report)
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
    with _hub(ctx).session() as session:
        text = config.export(session)
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)
