"""Operator commands: the audit trail, the delivery ledger, retention, backup and restore."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess  # noqa: S404 - pg_dump / pg_restore are run with argument lists, never a shell
import threading
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from hub import config as hub_config
from hub import db, ledger, retention, stix, withdrawals
from hub.cli.progress import reporter
from hub.cli.tools import fail_cleanly as _fail_cleanly
from hub.cli.tools import hub_of as _hub
from hub.errors import HubError
from hub.progress import Report, silent
from hub.store import auditlog

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
COPY_POLL_S = 0.2  # how often the size of a SQLite copy is looked at


# --------------------------------------------------------------------- audit


@dataclass(frozen=True)
class ChainCheck:
    """The result of walking the audit chain: how many events, the head, the first break if any."""

    events: int
    head: str
    problem: str | None = None


def verify_chain(session: Session, batch: int = 5000) -> ChainCheck:
    """Recompute every link of the audit chain; name the first event that does not verify."""
    prev, last_id, count = "", 0, 0
    while True:
        events = auditlog.audit_events(session, after_id=last_id, limit=batch)
        for ev in events:
            row = {k: getattr(ev, k) for k in auditlog.AUDIT_FIELDS}
            where = f"event {ev.id} ({stix.format_timestamp(ev.at_us)} {ev.action} by {ev.actor})"
            if ev.prev_hash != prev:
                return ChainCheck(
                    count, prev, f"audit chain broken at {where}: the event before it was deleted or altered"
                )
            if auditlog.audit_hash(prev, row) != ev.hash:
                return ChainCheck(count, prev, f"audit chain broken at {where}: its content was edited")
            prev, last_id, count = ev.hash, ev.id, count + 1
        if len(events) < batch:
            break
    head_id, head_hash = auditlog.audit_head(session)
    if (head_id, head_hash) != (last_id, prev):
        return ChainCheck(
            count,
            prev,
            f"audit chain broken after event {last_id}: the chain head records event "
            f"{head_id}; the newest events were deleted or altered",
        )
    return ChainCheck(count, prev)


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
@click.pass_context
@_fail_cleanly
def audit_verify(ctx: click.Context) -> None:
    """Check every audit event against the hash chain; exit 1 naming the first broken one."""
    with _hub(ctx, migrate=False).session(write=False) as session:
        result = verify_chain(session)
    if result.problem:
        raise click.ClickException(result.problem)
    click.echo(f"audit chain intact: {result.events} events, head {result.head or '-'}")


@audit_group.command("list")
@click.option("--action", help="Only this action (e.g. key.create, login.failed).")
@click.option("--actor", help="Only events by this actor.")
@click.option("--since", help="Only events at or after this RFC 3339 time.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
@_fail_cleanly
def audit_list(ctx: click.Context, action: str | None, actor: str | None, since: str | None, limit: int) -> None:
    """List audit events, oldest first."""
    since_us = None
    if since:
        try:
            since_us = stix.parse_filter_timestamp(since)
        except ValueError:
            raise click.BadParameter(f"{since!r} is not an RFC 3339 timestamp", param_hint="--since") from None
    with _hub(ctx, migrate=False).session(write=False) as session:
        events = auditlog.audit_events(session, action=action, actor=actor, since_us=since_us, limit=limit)
    click.echo(f"{'ID':<8} {'AT':<20} {'ACTOR':<16} {'ACTION':<18} {'TARGET':<30} DETAIL")
    for ev in events:
        at = stix.format_timestamp(ev.at_us)[:19].replace("T", " ")
        click.echo(f"{ev.id:<8} {at:<20} {ev.actor:<16} {ev.action:<18} {ev.target:<30} {ev.detail}")


# --------------------------------------------------------------------- ledger


@click.group("ledger")
def ledger_group() -> None:
    """The delivery ledger."""


@ledger_group.command("who-received")
@click.argument("object_id")
@click.option("--version", help="Only this version (its 'modified' timestamp).")
@click.pass_context
@_fail_cleanly
def ledger_who_received(ctx: click.Context, object_id: str, version: str | None) -> None:
    """Which partners received OBJECT_ID (or one version of it), when, through which key and rules."""
    hub = _hub(ctx)
    with hub.session(write=False) as session:
        receipts = ledger.who_received(session, hub.snapshot(session), object_id, version)
    if not receipts:
        click.echo(f"no partner has received {object_id}" + (f" version {version}" if version else ""))
        return
    click.echo(f"{'PARTNER':<14} {'KEY':<15} {'AT':<28} {'ENDPOINT':<9} {'COLLECTION':<14} {'RULES':<6} VERSION")
    for r in receipts:
        click.echo(
            f"{r.partner:<14} {r.key_id:<15} {stix.format_timestamp(r.at_us):<28} {r.endpoint:<9} "
            f"{r.collection:<14} {r.rules_version:<6} {r.version}"
        )


# --------------------------------------------------------------------- retention


@click.group("retention")
def retention_group() -> None:
    """Archive superseded object versions past their collection's retention."""


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Print what would be archived; change nothing.")
@click.option(
    "--batch-size",
    default=retention.DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Versions moved per write transaction.",
)
@click.pass_context
@_fail_cleanly
def retention_run(ctx: click.Context, dry_run: bool, batch_size: int) -> None:
    """Archive, per collection with retention_days, the superseded versions older than it; one line each."""
    hub = _hub(ctx)
    with reporter(ctx, "retention") as report:
        outcomes = retention.run(hub, dry_run=dry_run, batch_size=batch_size, progress=report)
    if not outcomes:
        click.echo("no collection has retention_days: every version is kept")
    for outcome in outcomes:
        click.echo(outcome.summary(dry_run))


@retention_group.command("statuses")
@click.option("--dry-run", is_flag=True, help="Print how many would be deleted; change nothing.")
@click.pass_context
@_fail_cleanly
def retention_statuses(ctx: click.Context, dry_run: bool) -> None:
    """Delete the TAXII status resources older than the status_retention_days setting."""
    hub = _hub(ctx)
    count = retention.purge_statuses(hub, dry_run=dry_run)
    click.echo(
        f"{'would delete' if dry_run else 'deleted'} {count} status resources older than "
        f"{hub.settings['status_retention_days']} days (status_retention_days)"
    )


@click.command("recall")
@click.argument("object_id")
@click.option("--reason", default="", help="Why the object is recalled (kept with the recall and the audit event).")
@click.pass_context
@_fail_cleanly
def recall(ctx: click.Context, object_id: str, reason: str) -> None:
    """Recall OBJECT_ID from every partner that received it: notices, withdrawals in their feeds, an audit event."""
    hub = _hub(ctx)
    with hub.session() as session:
        result = withdrawals.recall(session, hub.snapshot(session), object_id, "cli", reason.strip())
    if not result.recipients:
        click.echo(f"recall {result.id} recorded: no partner has received {object_id}")
        return
    click.echo(f"recall {result.id} recorded: {object_id} withdrawn from {', '.join(result.recipients)}")


# --------------------------------------------------------------------- backup and restore


def _database_url(ctx: click.Context) -> str:
    return hub_config.load(ctx.find_root().params.get("config"))["database_url"]


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise HubError("backup and restore need a file database, not an in-memory one")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """Return a libpq connection URI without the password, and an environment carrying it."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str], progress: Report, marker: str, total: int | None) -> None:
    """Run a PostgreSQL client tool with ``--verbose``; report each table it names after ``marker``."""
    if shutil.which(args[0]) is None:
        raise HubError(
            f"{args[0]} is not installed: install the PostgreSQL client tools (same major version as "
            "the server or newer)"
        )
    # Untranslated messages: the table lines are recognised by their English wording.
    env = {**env, "LC_ALL": "C"}
    lines: list[str] = []
    tables = 0
    with subprocess.Popen(  # noqa: S603
        [*args, "--verbose"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if marker in line:
                tables += 1
                progress("tables", tables, total, unit="tables")
            else:
                lines.append(line.strip())
    if proc.returncode != 0:
        errors = [line for line in lines if f"{args[0]}: error:" in line]
        shown = errors[0] if errors else next((line for line in reversed(lines) if line), "")
        raise HubError(f"{args[0]} failed: {shown}")
    progress("tables", tables, max(tables, total or 0), unit="tables")


def _copy_sqlite(source: Path, target: Path, progress: Report) -> None:
    """Copy a SQLite database with the online backup API, reporting the bytes written as they grow.

    The copy is one backup step, as consistent as a single read: a copy in several steps starts
    again whenever the live hub writes in between, and so might never end. It runs in a thread
    while this one watches the target file grow.
    """
    probe = sqlite3.connect(source)
    try:
        size = probe.execute("PRAGMA page_count").fetchone()[0] * probe.execute("PRAGMA page_size").fetchone()[0]
    finally:
        probe.close()
    failed: list[BaseException] = []

    def copy() -> None:
        src, dest = sqlite3.connect(source), sqlite3.connect(target)
        try:
            with dest:
                src.backup(dest)
        except BaseException as exc:  # noqa: BLE001 - raised again in the calling thread
            failed.append(exc)
        finally:
            dest.close()
            src.close()

    worker = threading.Thread(target=copy, name="sqlite-backup", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(COPY_POLL_S)
        progress("copy", target.stat().st_size if target.exists() else 0, size, unit="bytes")
    if failed:
        raise failed[0]
    written = target.stat().st_size
    progress("copy", written, max(written, size), unit="bytes")


def _table_count(url: str) -> int:
    engine = db.make_engine(url)
    try:
        return len(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def backup_database(url: str, target: Path, progress: Report = silent) -> None:
    """Write a consistent copy of the live database to ``target`` (SQLite file or pg_dump custom format).

    ``progress`` hears of the bytes copied (SQLite, phase "copy") or of each table dumped ("tables").
    """
    if url.startswith("sqlite"):
        _copy_sqlite(_sqlite_path(url), target, progress)
        return
    uri, env = _libpq(url)
    args = ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", uri]
    _run(args, env, progress, "dumping contents of table", _table_count(url))


def _tables_in_dump(source: Path, env: dict[str, str]) -> int | None:
    """Count the tables whose rows a pg_dump archive holds (its TABLE DATA entries); None when unknown."""
    tool = shutil.which("pg_restore")
    if tool is None:
        return None  # _run names what is missing
    listed = subprocess.run([tool, "--list", str(source)], env=env, capture_output=True, text=True, check=False)  # noqa: S603
    return sum(" TABLE DATA " in line for line in listed.stdout.splitlines()) if listed.returncode == 0 else None


def restore_database(url: str, source: Path, progress: Report = silent) -> None:
    """Load a backup into an empty database, then bring its schema up to date.

    ``progress`` hears of the bytes copied (SQLite, phase "copy") or of each table loaded ("tables").
    """
    magic = source.read_bytes()[:16]
    is_sqlite = url.startswith("sqlite")
    if is_sqlite and not magic.startswith(SQLITE_MAGIC):
        raise HubError(f"{source} is not a SQLite backup (this hub's database is SQLite)")
    if not is_sqlite and not magic.startswith(PG_MAGIC):
        raise HubError(f"{source} is not a pg_dump custom-format backup (this hub's database is PostgreSQL)")
    if _table_count(url):
        raise HubError(
            f"the database at {make_url(url).render_as_string(hide_password=True)} is not empty; "
            "restore only into a new, empty database"
        )
    if is_sqlite:
        _copy_sqlite(source, _sqlite_path(url), progress)
    else:
        uri, env = _libpq(url)
        args = [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={uri}",
            str(source),
        ]
        _run(args, env, progress, "processing data for table", _tables_in_dump(source, env))
    progress("schema", 0, 1, unit="steps")
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    progress("schema", 1, 1, unit="steps")


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.pass_context
@_fail_cleanly
def backup(ctx: click.Context, file: str) -> None:
    """Write a consistent backup of the live database to FILE (the hub keeps serving)."""
    url = _hub(ctx).settings["database_url"]
    target = Path(file)
    if target.exists():
        raise click.ClickException(f"{file} already exists; choose a new file")
    with reporter(ctx, "backup") as report:
        backup_database(url, target, report)
    click.echo(f"backup written to {file} ({target.stat().st_size} bytes)")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
@_fail_cleanly
def restore(ctx: click.Context, file: str) -> None:
    """Restore FILE (from `cti-hub backup`) into the configured database, which must be empty."""
    url = _database_url(ctx)
    with reporter(ctx, "restore") as report:
        restore_database(url, Path(file), report)
    click.echo(f"restored {file} into {make_url(url).render_as_string(hide_password=True)}")
