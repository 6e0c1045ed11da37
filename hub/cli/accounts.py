"""``cti-hub partners``, ``cti-hub keys`` and ``cti-hub admin``: partners, their API keys and the panel's accounts."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from hub import accounts, auth, mfa, passkeys
from hub import models as m
from hub.cli.tools import fail_cleanly as _fail_cleanly
from hub.cli.tools import hub_of as _hub
from hub.policy import TLP
from hub.store import clock, snapshots

# --------------------------------------------------------------------- partners and keys


@click.group("partners")
def partners() -> None:
    """Partner organisations."""


@partners.command("list")
@click.pass_context
@_fail_cleanly
def partners_list(ctx: click.Context) -> None:
    """List partners with country, kind, clearance and state."""
    with _hub(ctx, migrate=False).session(write=False) as session:
        rows = session.scalars(select(m.Partner).where(m.Partner.kind != "hub").order_by(m.Partner.slug)).all()
    click.echo(f"{'PARTNER':<14} {'COUNTRY':<8} {'KIND':<11} {'CLEARANCE':<13} {'STATE':<10} NAME")
    for p in rows:
        state = "active" if p.active else "suspended"
        click.echo(f"{p.slug:<14} {p.country:<8} {p.kind:<11} {TLP(p.clearance).label:<13} {state:<10} {p.name}")


@click.group("keys")
def keys() -> None:
    """API keys for partners."""


@keys.command("create")
@click.argument("partner")
@click.option("--read-only", is_flag=True, help="The key may read but never publish.")
@click.option("--expires-days", type=int, help="The key stops working after N days.")
@click.option("--cidr", multiple=True, help="Only accept the key from this network (repeatable).")
@click.option("--label", default="", help="A note to recognise the key by.")
@click.option("--cert-sha256", default="", help="Accept the key only with the client certificate of this SHA-256.")
@click.option(
    "--cert-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Accept the key only with this client certificate (PEM): its SHA-256 is bound.",
)
@click.option(
    "--cert-subject", default="", help='Accept the key only with a client certificate of this subject ("CN=...,O=...").'
)
@click.pass_context
@_fail_cleanly
def keys_create(
    ctx: click.Context,
    partner: str,
    read_only: bool,
    expires_days: int | None,
    cidr: tuple[str, ...],
    label: str,
    cert_sha256: str,
    cert_file: str | None,
    cert_subject: str,
) -> None:
    """Issue a key for PARTNER; the secret is printed once, alone on the last line."""
    hub = _hub(ctx)
    if cert_file:
        try:
            cert_sha256 = auth.ClientCertificate.from_pem(open(cert_file, encoding="ascii").read()).sha256
        except (ValueError, UnicodeDecodeError):
            raise click.ClickException(f"{cert_file}: not a PEM certificate") from None
    with hub.session() as session:
        key_id, secret = accounts.create_key(
            session,
            hub.pepper,
            partner,
            read_only=read_only,
            expires_days=expires_days,
            cidrs=",".join(cidr),
            label=label,
            cert_sha256=cert_sha256,
            cert_subject=cert_subject,
        )
    click.echo(f"key {key_id} for {partner} (store the secret now: it is not kept and cannot be shown again)", err=True)
    click.echo(secret)


@keys.command("rotate")
@click.argument("partner")
@click.option("--overlap", default="7d", show_default=True, help="How long the old key keeps working: 7d, 36h, 0.")
@click.option("--key", "key_id", default="", help="Rotate this key only (default: every active key of PARTNER).")
@click.pass_context
@_fail_cleanly
def keys_rotate(ctx: click.Context, partner: str, overlap: str, key_id: str) -> None:
    """Issue a new key for PARTNER and expire its old one after the overlap; the new secret is on the last line."""
    overlap_us = _duration_us(overlap)
    hub = _hub(ctx)
    with hub.session() as session:
        new_id, secret, expiring = accounts.rotate_keys(
            session, hub.pepper, partner, overlap_us=overlap_us, key_id=key_id
        )
        snapshots.bump_rules(session)
    click.echo(
        f"key {new_id} for {partner}; {', '.join(expiring)} stop(s) working in {overlap} "
        "(store the secret now: it is not kept and cannot be shown again)",
        err=True,
    )
    click.echo(secret)


def _duration_us(text: str) -> int:
    """Read ``7d``, ``36h``, ``90m`` or ``0`` as microseconds; a bad value is a usage error."""
    units = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
    value = text.strip().lower()
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "s")
    if not number.isdigit():
        raise click.BadParameter(f"{text!r} is not a duration (use e.g. 7d, 36h, 90m or 0)", param_hint="--overlap")
    return int(number) * units[unit] * 1_000_000


@keys.command("list")
@click.option("--partner", help="Only this partner's keys.")
@click.pass_context
@_fail_cleanly
def keys_list(ctx: click.Context, partner: str | None) -> None:
    """List keys (never their secrets)."""
    stmt = select(m.ApiKey, m.Partner.slug).join(m.Partner).order_by(m.Partner.slug, m.ApiKey.created_us)
    if partner:
        stmt = stmt.where(m.Partner.slug == partner)
    with _hub(ctx, migrate=False).session(write=False) as session:
        rows = session.execute(stmt).all()
    click.echo(f"{'KEY':<15} {'PARTNER':<14} {'STATE':<9} {'MODE':<10} {'EXPIRES':<12} {'LAST USED':<20} LABEL")
    now = clock.now_us()
    for key, slug in rows:
        state = "revoked" if key.revoked_us else "expired" if key.expires_us and key.expires_us <= now else "active"
        mode = "read-only" if key.read_only else "read-write"
        click.echo(
            f"{key.key_id:<15} {slug:<14} {state:<9} {mode:<10} {_day(key.expires_us):<12} "
            f"{_day(key.last_used_us, seconds=True):<20} {key.label}"
        )


def _day(us: int | None, *, seconds: bool = False) -> str:
    if us is None:
        return "-"
    from hub import stix

    text = stix.format_timestamp(us)
    return text[:19].replace("T", " ") if seconds else text[:10]


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
@_fail_cleanly
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key; it fails from the next request on."""
    with _hub(ctx).session() as session:
        accounts.revoke_key(session, key_id)
        snapshots.bump_rules(session)
    click.echo(f"key {key_id} revoked")


# --------------------------------------------------------------------- admin accounts


@click.group("admin")
def admin() -> None:
    """Administrator accounts for the web panel."""


@admin.command("create")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
@click.option("--role", type=click.Choice(["admin", "auditor"]), default="admin", show_default=True)
@click.option(
    "--mfa",
    "mfa_kind",
    type=click.Choice(["totp"]),
    help="Enrol a TOTP authenticator now: its otpauth:// URI and recovery codes are printed once.",
)
@click.pass_context
@_fail_cleanly
def admin_create(ctx: click.Context, username: str, password_stdin: bool, role: str, mfa_kind: str | None) -> None:
    """Create an administrator (argon2-hashed password), optionally with its TOTP second factor."""
    password = sys.stdin.readline().rstrip("\n")
    hub = _hub(ctx)
    with hub.session() as session:
        accounts.create_admin(session, username, password, role)
        enrolment = mfa.enrol_new(session, hub.pepper, username, actor="cli", via="cli") if mfa_kind else None
    click.echo(f"{role} {username} created")
    if enrolment:
        _print_enrolment(enrolment)


@admin.command("totp")
@click.argument("username")
@click.option("--remove", is_flag=True, help="Take the authenticator and recovery codes off instead.")
@click.pass_context
@_fail_cleanly
def admin_totp(ctx: click.Context, username: str, remove: bool) -> None:
    """Give USERNAME a new TOTP authenticator (the old one and its recovery codes stop working), or remove it."""
    hub = _hub(ctx)
    if not remove:
        with hub.session() as session:
            enrolment = mfa.enrol_new(session, hub.pepper, username, actor="cli", via="cli")
        _print_enrolment(enrolment)
        return
    with hub.session() as session:
        had = mfa.remove(session, username, actor="cli")
    click.echo(f"{username}: authenticator and recovery codes removed" if had else f"{username} had no authenticator")
    if hub.settings.get("admin_mfa_required"):
        click.echo("admin_mfa_required is on: the account enrols a new authenticator at its next login")


@admin.command("passkeys")
@click.argument("username")
@click.option("--remove-all", is_flag=True, help="Take every security key off the account (a lost key).")
@click.pass_context
@_fail_cleanly
def admin_passkeys(ctx: click.Context, username: str, remove_all: bool) -> None:
    """List the security keys (passkeys) of USERNAME, or remove them all."""
    hub = _hub(ctx)
    if remove_all:
        with hub.session() as session:
            removed = passkeys.remove_all(session, mfa.account(session, username), actor="cli")
        click.echo(f"{username}: {removed} security key(s) removed")
        return
    with hub.session(write=False) as session:
        found = passkeys.keys(session, mfa.account(session, username).id)
        rows = [(k.name, k.created_us, k.last_used_us, k.sign_count) for k in found]
    if not rows:
        click.echo(f"{username} has no security key")
        return
    click.echo(f"{'ENROLLED':<20} {'LAST USED':<20} {'COUNTER':<8} NAME")
    for name, created_us, last_used_us, sign_count in rows:
        click.echo(
            f"{_day(created_us, seconds=True):<20} {_day(last_used_us, seconds=True):<20} {sign_count:<8} {name}"
        )


def _print_enrolment(enrolment: mfa.Enrolment) -> None:
    """Show a new authenticator once: the URI (a QR code too on a terminal) and the recovery codes."""
    click.echo(f"TOTP authenticator for {enrolment.username} (shown once; scan the QR code or add the URI):")
    click.echo(enrolment.uri)
    if sys.stdout.isatty():
        click.echo(mfa.qr_terminal(enrolment.uri))
    click.echo("Recovery codes (each works once instead of a code; keep them offline):")
    for code in enrolment.recovery_codes:
        click.echo(f"  {code}")
