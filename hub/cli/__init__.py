"""The ``cti-hub`` command line: one click group; every failure is one line on stderr and exit 1.

Each module holds one family of commands; this one only assembles them:
``sharing`` (db, sharing, partners), ``accounts`` (keys, admin), ``serve`` (serve, demo),
``ops`` (audit, ledger, retention, recall, backup, restore), ``settings`` (config), ``feedback``
(feedback list) and the feed commands of :mod:`feeds.cli`. The long ones report their progress on stderr
through :mod:`hub.cli.progress`.
"""

from __future__ import annotations

import click

from feeds.cli import actors, feeds
from hub import __version__
from hub.cli import accounts, feedback, ops, serve, settings, sharing
from hub.cli.tools import HubGroup


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected failure instead of one line.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Show no progress on standard error (the results and errors still appear)."
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="CTI_HUB_CONFIG",
    help="Settings file (TOML); defaults to HUB_* environment variables only.",
)
def main(config: str | None, debug: bool, quiet: bool) -> None:
    """Run and administer a cti-hub TAXII 2.1 sharing hub."""


for command in (
    sharing.db_group,
    sharing.sharing,
    accounts.partners,
    accounts.keys,
    accounts.admin,
    serve.serve,
    serve.demo,
    settings.config_group,
    feeds,
    actors,
    ops.audit_group,
    ops.ledger_group,
    ops.retention_group,
    ops.recall,
    ops.backup,
    ops.restore,
    feedback.feedback_group,
):
    main.add_command(command)
