"""``cti-hub config``: the effective settings, as the hub will run with them."""

from __future__ import annotations

import click

from hub import config as hub_config
from hub.cli.tools import fail_cleanly


@click.group("config")
def config_group() -> None:
    """The hub's settings."""


@config_group.command("show")
@click.pass_context
@fail_cleanly
def config_show(ctx: click.Context) -> None:
    """Print every effective setting, secrets masked, with where its value came from."""
    settings, sources = hub_config.load_with_sources(ctx.find_root().params.get("config"))
    width = max(len(key) for key in settings)
    for key, value in settings.items():
        click.echo(f"{key:<{width}}  {hub_config.masked(key, value)}  ({sources[key]})")
