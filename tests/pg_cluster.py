"""A throw-away PostgreSQL primary and its streaming replica, for the tests of reads from replicas.

The shared test server (HUB_TEST_POSTGRES) is not ours to reconfigure for replication, so the tests
start their own pair with the server binaries of this machine: ``initdb`` and ``pg_ctl`` for a primary
on a free port under a temporary directory, ``pg_basebackup -R`` for a hot standby on another. As
root (CI), the servers run as the ``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.live import free_port

TOOLS = ("initdb", "pg_ctl", "pg_basebackup")
# Test servers: no fsync (nothing here must survive a power cut), fast checkpoints, and enough WAL kept
# for a replica stopped for a few seconds to catch up by streaming.
SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on -c full_page_writes=off "
    "-c wal_level=replica -c max_wal_senders=4 -c wal_keep_size=256MB -c max_connections=60 "
    "-c shared_buffers=32MB -c hot_standby=on -c wal_receiver_status_interval=1 -c log_min_messages=warning"
)


def server_binaries() -> Path:
    """The directory holding initdb, pg_ctl and pg_basebackup of one PostgreSQL version, or skip the test."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(Path(candidate, tool).exists() for tool in TOOLS):
            return Path(candidate)
    found = [shutil.which(tool) for tool in TOOLS]
    if all(found) and len({Path(str(p)).resolve().parent for p in found}) == 1:
        return Path(str(found[0])).resolve().parent
    pytest.skip(
        "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are not installed: apt-get install postgresql"
    )


class Cluster:
    """A primary and one replica on ports of their own; ``url``/``replica_url`` name the ``hub`` database."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.base = Path(tempfile.mkdtemp(prefix="cti-hub-replicas-"))
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.primary_dir, self.replica_dir = self.base / "primary", self.base / "replica"
        self.primary_port, self.replica_port = free_port(), free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.primary_port}/hub"
        self.replica_url = f"postgresql://postgres@127.0.0.1:{self.replica_port}/hub"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def _start(self, data: Path, port: int) -> None:
        options = f"-p {port} -k {self.base} {SERVER_OPTIONS}"
        self._run("pg_ctl", "-D", str(data), "-l", str(data.parent / f"{data.name}.log"), "-o", options, "-w", "start")

    def start(self) -> None:
        """Create and start the primary with an empty ``hub`` database, then clone it into a running replica."""
        self._run("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._start(self.primary_dir, self.primary_port)
        admin = create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.primary_port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE hub"))
        admin.dispose()
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres"),
            *("-D", str(self.replica_dir), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"),
        )
        self.start_replica()

    def start_replica(self) -> None:
        self._start(self.replica_dir, self.replica_port)

    def kill_replica(self) -> None:
        """Stop the replica the hard way (SIGQUIT to the postmaster: no shutdown checkpoint, as in a crash)."""
        self._run("pg_ctl", "-D", str(self.replica_dir), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        for data in (self.replica_dir, self.primary_dir):
            if (data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
                except RuntimeError:
                    pass  # already gone
        shutil.rmtree(self.base, ignore_errors=True)

    def replica_sql(self, statement: str) -> None:
        """Run one statement on the replica (``pg_wal_replay_pause()`` and the like)."""
        engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.replica_port}/hub")
        with engine.connect() as conn:
            conn.execute(text(statement))
            conn.commit()
        engine.dispose()

    def wait_caught_up(self, timeout: float = 20.0) -> None:
        """Wait until the replica has replayed everything the primary wrote so far."""
        primary = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.primary_port}/hub")
        replica = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{self.replica_port}/hub")
        try:
            with primary.connect() as conn:
                target = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with replica.connect() as conn:
                    query = text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
                    if conn.execute(query, {"lsn": target}).scalar_one():
                        return
                time.sleep(0.05)
            raise AssertionError(f"the replica did not replay up to {target} within {timeout} s")
        finally:
            primary.dispose()
            replica.dispose()
