"""What every ``cti-hub`` command group shares: one-line errors and the hub for the invocation."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import click

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


def hub_of(ctx: click.Context) -> Hub:
    """Return the hub for this invocation (kept on the root context), migrations applied first."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = Hub(hub_config.load(root.params.get("config")))
        root.call_on_close(root.obj.engine.dispose)
        db.upgrade(root.obj.engine)
    return root.obj
