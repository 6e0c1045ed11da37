"""Servers for the tests that talk HTTP: `cti-hub serve` (gunicorn) in a subprocess, or an app in a thread."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from hub import sharing
from tests import factories as f

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, verify: bool | str = True) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(f"{base}/readyz", timeout=5, verify=verify).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def serve_demo(make_app, settings: dict, tmp_path: Path) -> Iterator[tuple[str, dict, dict]]:
    """Apply the demo sharing file, issue keys, start `cti-hub serve`; yield (base url, keys, collection ids)."""
    app = make_app()
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "singcert")}
    with hub.session() as s:
        snap = hub.snapshot(s)
        ids = {c.alias: c.uuid for c in snap.collections_of("dprk")}
    port = free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    log = open(tmp_path / "server.log", "wb")  # a file, not a pipe: nobody reads it while the server runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base, keys, ids
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def serve_command(
    settings: dict, tmp_path: Path, *args: str, ca: str | None = None, port: int | None = None
) -> Iterator[str]:
    """Run `cti-hub serve` (gunicorn) on the settings' database with extra ``args``; yield its base url.

    With ``ca`` the server speaks HTTPS (``args`` hold ``--certfile``/``--keyfile``) and is checked against that CA.
    ``port``: one the caller took from ``free_port`` (to name it in a setting); by default a free one.
    """
    port = port or free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    for key, value in settings.items():
        if key not in ("database_url", "secret_key", "data_dir"):
            env[f"CTI_HUB_{key.upper()}"] = str(value)
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "1", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, verify=ca or True)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def serve_in_thread(app, ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve a Flask app from a thread of this process (over TLS with ``ssl_context``); yield its base url."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{server.server_port}"
    server.shutdown()
