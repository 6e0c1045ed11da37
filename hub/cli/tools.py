"""What every ``cti-hub`` command group shares: one-line errors and the hub for the invocation."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import click
import requests
from sqlalchemy import exc as sa_exc

from hub import config as hub_config
from hub import db
from hub.errors import HubError
from hub.runtime import Hub


def fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a HubError into click's one-line error and exit status 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HubError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper


class HubGroup(click.Group):
    """The root command: every failure ends as one line on standard error and exit status 1.

    Usage errors (click's exit status 2) exit 1 too, as the README promises; database, filesystem and
    network failures are named with how to fix them; ``--debug`` shows the traceback instead.
    """

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        if extra.pop("standalone_mode", True) is False:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, standalone_mode=False, **extra)
        except click.ClickException as error:
            error.show()
            sys.exit(1)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except Exception as error:
            options = argv[: argv.index("--")] if "--" in argv else argv
            if "--debug" in options:
                raise
            click.echo(f"Error: {describe(error)}", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def describe(error: BaseException) -> str:
    """One line naming what failed and how to fix it."""
    if isinstance(error, HubError):
        return error.message
    if isinstance(error, sa_exc.DBAPIError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
        return f"the database failed: {reason}; check database_url (CTI_HUB_DATABASE_URL) and that the server runs"
    if isinstance(error, sa_exc.SQLAlchemyError):
        return f"the database failed: {str(error).splitlines()[0]}; check database_url (CTI_HUB_DATABASE_URL)"
    if isinstance(error, OSError) and error.filename is not None:
        what = error.strerror or type(error).__name__
        return f"{what}: {error.filename}; check the path (data_dir, CTI_HUB_DATA_DIR) and its permissions"
    if isinstance(error, requests.RequestException):
        return f"the network request failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    if isinstance(error, OSError):
        return f"{error.strerror or type(error).__name__}: {error}"
    detail = str(error).splitlines()[0] if str(error) else ""
    return f"unexpected {type(error).__name__}{': ' + detail if detail else ''} (cti-hub --debug shows the traceback)"


def hub_of(ctx: click.Context, *, migrate: bool = True) -> Hub:
    """Return the hub for this invocation (kept on the root context), migrations applied first.

    A read-only command (``migrate=False``) changes nothing, the schema included: on a database whose
    schema is not this release's it stops with one line saying to run ``cti-hub db upgrade``.
    """
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Hub(hub_config.load(root.params.get("config")))
        root.call_on_close(root.obj.close)
        root.meta["hub_migrated"] = False
    root.meta.setdefault("hub_migrated", True)  # a hub handed in by the caller (``obj=``) is its business
    if migrate and not root.meta["hub_migrated"]:
        db.upgrade(root.obj.engine)
        root.meta["hub_migrated"] = True
    elif not migrate and not root.meta["hub_migrated"] and not db.is_current(root.obj.engine):
        raise click.ClickException(
            "the database schema is not this release's (a new database, or one from an older release): "
            "run `cti-hub db upgrade` first"
        )
    return root.obj
