"""``cti-hub serve`` and ``cti-hub demo``: run the hub with gunicorn, or set up a demo hub."""

from __future__ import annotations

import importlib.resources
import os
import sys
from pathlib import Path

import click

from hub.cli.tools import fail_cleanly as _fail_cleanly
from hub.cli.tools import hub_of as _hub

# --------------------------------------------------------------------- serve and demo


KEEP_ALIVE_SECONDS = 75


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=4, show_default=True, type=int)
@click.option(
    "--certfile", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate (PEM)."
)
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="The private key of --certfile (PEM).")
@click.option(
    "--ca-certs",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificates (PEM) that partners' client certificates must be signed by.",
)
@click.option(
    "--cert-reqs",
    type=click.Choice(["0", "1", "2"]),
    default="0",
    show_default=True,
    help="Client certificates: 0 not asked for, 1 verified when sent, 2 required.",
)
@click.pass_context
@_fail_cleanly
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int,
    threads: int,
    certfile: str | None,
    keyfile: str | None,
    ca_certs: str | None,
    cert_reqs: str,
) -> None:
    """Serve the hub with gunicorn (migrations are applied first)."""
    hub = _hub(ctx)
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    if (ca_certs or cert_reqs != "0") and not certfile:
        raise click.UsageError("--ca-certs and --cert-reqs need --certfile and --keyfile (the hub must terminate TLS)")
    if cert_reqs != "0" and not ca_certs:
        raise click.UsageError("--cert-reqs 1 or 2 needs --ca-certs to verify client certificates with")
    tls = ["--certfile", certfile, "--keyfile", keyfile] if certfile and keyfile else []
    if ca_certs:
        tls += ["--ca-certs", ca_certs, "--cert-reqs", cert_reqs]
    args = [
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        "120",
        # Idle keep-alive connections stay open longer than pollers and load balancers pause between
        # requests (gunicorn's 2 s default races clients that reuse a connection it is closing).
        # No gunicorn access log: the hub writes one JSON line per request itself (hub.access).
        "--keep-alive",
        str(KEEP_ALIVE_SECONDS),
        *tls,
        # Its own log lines in the hub's JSON (hub.logs); unhandled errors and the hub's lines too.
        "--config",
        "python:hub.gunicorn_conf",
        "hub.wsgi:app",
    ]
    # Every worker writes its metrics there and /metrics adds them up (emptied at start: hub.gunicorn_conf).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(hub.settings["data_dir"]) / "prometheus"))
    scheme = "https" if tls else "http"
    click.echo(f"serving on {scheme}://{host}:{port}/taxii2/ with {workers} workers", err=True)
    os.execvp(sys.executable, [sys.executable, "-m", *args])  # noqa: S606 - replace this process with gunicorn


@click.command()
@click.option(
    "--file",
    "file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="The sharing configuration to apply [default: the demo configuration shipped with the hub, "
    "config/sharing.yaml in the sources].",
)
@click.option("--objects", default=2000, show_default=True, help="Demo indicators to load on first run.")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="Where the hub will listen.")
@click.pass_context
@_fail_cleanly
def demo(ctx: click.Context, file: str | None, objects: int, url: str) -> None:
    """Set up a demo hub: apply FILE, load DPRK demo indicators, issue keys, print how to connect."""
    from hub.demo import setup as demo_module

    hub = _hub(ctx)
    with importlib.resources.as_file(importlib.resources.files("hub.demo") / "sharing.yaml") as shipped:
        demo_module.run(hub, file or str(shipped), objects, url, echo=click.echo)
