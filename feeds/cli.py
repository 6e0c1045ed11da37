"""``cti-hub feeds import`` and ``cti-hub actors``: every failure is one line and a non-zero exit."""

from __future__ import annotations

import sys
from typing import Any

import click

from feeds import REGISTRY, taxii_source
from feeds import attack as attack_feed
from feeds import iocs as _iocs  # noqa: F401 - registers the csv and text connectors
from feeds import misp as _misp  # noqa: F401 - registers the misp connector
from feeds import stix_bundle as _stix_bundle  # noqa: F401 - registers the stix connector
from feeds.base import resolve_target
from hub.cli.tools import hub_of as _hub
from hub.errors import HubError
from hub.policy import TLP

REFUSALS_SHOWN = 20
TLP_NAMES = {
    "CLEAR": TLP.CLEAR,
    "WHITE": TLP.CLEAR,
    "GREEN": TLP.GREEN,
    "AMBER": TLP.AMBER,
    "AMBER+STRICT": TLP.AMBER_STRICT,
    "RED": TLP.RED,
}


@click.group()
def feeds() -> None:
    """Import threat intelligence from files, URLs and ATT&CK."""


@feeds.command("import")
@click.argument("kind", type=click.Choice(sorted(REGISTRY)))
@click.argument("source")
@click.option("--partner", help="Import on behalf of this partner (slug; 'hub' for the hub itself).")
@click.option("--collection", help="Target collection: alias or id.")
@click.option("--root", default="dprk", show_default=True, help="API root of the collection.")
@click.option(
    "--tlp",
    type=click.Choice(sorted(TLP_NAMES), case_sensitive=False),
    help="TLP to apply to objects that carry none (default: the collection's default TLP).",
)
@click.option("--strict", is_flag=True, help="Refuse known deviations instead of mapping them.")
@click.option("--actor", help="csv/text/ecs: link every indicator to this intrusion set (name or alias).")
@click.option("--value-column", help="csv: the column holding the values.")
@click.option("--type-column", help="csv: the column holding the value types.")
@click.option("--notes-column", help="csv: the column holding notes.")
@click.option("--source-name", help="Name of the source (default: the file name; for taxii, the URL).")
@click.option("--user", help="taxii: HTTP Basic user name.")
@click.option("--password-env", help="taxii: environment variable holding the Basic password.")
@click.option("--token-env", help="taxii: environment variable holding a bearer token.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="taxii: client certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="taxii: client certificate key (PEM).")
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    help="taxii: CA certificates (PEM) to verify the server with, instead of the system's.",
)
@click.pass_context
def import_(
    ctx: click.Context,
    kind: str,
    source: str,
    partner: str | None,
    collection: str | None,
    root: str,
    tlp: str | None,
    strict: bool,
    actor: str | None,
    value_column: str | None,
    type_column: str | None,
    notes_column: str | None,
    source_name: str | None,
    user: str | None,
    password_env: str | None,
    token_env: str | None,
    cert: str | None,
    key: str | None,
    ca_bundle: str | None,
) -> None:
    """Import SOURCE (a file or URL; for misp also a feed directory) with the KIND connector; print a summary."""
    cls: Any = REGISTRY[kind]
    partner = partner or getattr(cls, "default_partner", None)
    collection = collection or getattr(cls, "default_collection", None)
    if not partner or not collection:
        raise click.ClickException(f"{kind}: give --partner and --collection")
    extra: dict[str, Any] = {}
    if kind in ("csv", "text", "ecs"):
        extra = {"actor": actor, "value_column": value_column, "type_column": type_column, "notes_column": notes_column}
    elif actor or value_column or type_column or notes_column:
        raise click.ClickException("--actor and the column options apply to csv, text and ecs imports only")
    if kind == "taxii":
        extra = {
            "settings": {
                "user": user,
                "password_env": password_env,
                "token_env": token_env,
                "cert": cert,
                "key": key,
                "verify": ca_bundle,
            }
        }
    elif user or password_env or token_env or cert or key or ca_bundle:
        raise click.ClickException("the credential options apply to taxii imports only")
    try:
        cls.ensure_installed()
        hub = _hub(ctx)
        target = resolve_target(hub, partner, collection, root)
        connector = cls(
            hub,
            target,
            tlp=TLP_NAMES[tlp.upper()] if tlp else None,
            strict=strict,
            source_label=source_name or "",
            **extra,
        )
        if kind == "taxii":
            outcome = connector.sync(source, lambda n: click.echo(f"page: {n} objects", err=True))
        else:
            ready = connector.load(source)
            with click.progressbar(
                range(len(ready)), label=f"{kind} -> {target.collection.alias}", show_pos=True, file=sys.stderr
            ) as bar:
                outcome = connector.ingest(ready, bar.update)
    except HubError as exc:
        raise click.ClickException(exc.message) from None
    for what, reason in outcome.refusals[:REFUSALS_SHOWN]:
        click.echo(f"refused {what}: {reason}", err=True)
    if len(outcome.refusals) > REFUSALS_SHOWN:
        click.echo(f"... and {len(outcome.refusals) - REFUSALS_SHOWN} more refusals (see the summary)", err=True)
    click.echo(outcome.summary())
    if outcome.refused_total and outcome.accepted + outcome.unchanged == 0:
        ctx.exit(1)


@feeds.command("sync")
@click.argument("names", nargs=-1)
@click.pass_context
def sync(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Pull what is new from every saved TAXII source (or the NAMES given); safe to run from cron."""
    hub = _hub(ctx)
    sources = [s for s in taxii_source.saved_sources(hub) if not names or s.name in names]
    missing = set(names) - {s.name for s in sources}
    if missing:
        raise click.ClickException(f"unknown source(s): {', '.join(sorted(missing))}")
    failed = 0
    for row in sources:
        try:
            click.echo(f"{row.name}: {taxii_source.sync_saved(hub, row).summary()}")
        except HubError as exc:
            failed += 1
            click.echo(f"{row.name}: failed: {exc.message}", err=True)
    if failed:
        raise click.ClickException(f"{failed} of {len(sources)} sources failed")


@click.command()
@click.option("--root", default="dprk", show_default=True, help="API root to list.")
@click.option("--partner", default="hub", show_default=True, help="List what this partner can read.")
@click.pass_context
def actors(ctx: click.Context, root: str, partner: str) -> None:
    """List the intrusion sets (canonical name, ATT&CK id, aliases)."""
    hub = _hub(ctx)
    with hub.session(write=False) as session:
        snap = hub.snapshot(session)
        if partner not in snap.by_slug:
            raise click.ClickException(f"unknown partner '{partner}'")
        if root not in snap.roots:
            raise click.ClickException(f"unknown API root '{root}'")
    found = attack_feed.actors(hub, partner, root)
    if not found:
        click.echo("no intrusion sets: import ATT&CK with `cti-hub feeds import attack FILE_OR_URL`")
        return
    for a in found:
        state = " (revoked)" if a.revoked else ""
        ext = f" [{a.external_id}]" if a.external_id else ""
        aliases = ", ".join(a.aliases) if a.aliases else "-"
        click.echo(f"{a.name}{ext}{state}: {aliases}")
