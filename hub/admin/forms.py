"""The panel's forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from hub import acs
from hub.formats import IPV4_PREFIX_BOUNDS, IPV6_PREFIX_BOUNDS, BlocklistLimits
from hub.sharing.parse_collections import MAX_FALSE_POSITIVE_THRESHOLD

TLP_LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
TLP_CHOICES = [SelectChoice(t, "TLP:" + t) for t in TLP_LEVELS]
KIND_CHOICES = [SelectChoice(k) for k in ("cert", "government", "private")]
SLUG = Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$", message="use 1-64 lower-case letters, digits, '-' or '_'")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{1,248}[a-z0-9]$")
_GRANT = re.compile(r"^(\*|(group:|partner:)?[a-z0-9][a-z0-9_-]{0,63})$")


def split_words(text: str | None) -> list[str]:
    """Read a list typed as commas, spaces or lines."""
    return [w for w in re.split(r"[\s,]+", text or "") if w]


def _each(pattern: re.Pattern[str], what: str):
    def check(_form: Any, field: Any) -> None:
        bad = [w for w in split_words(field.data) if not pattern.match(w)]
        if bad:
            raise ValidationError(f"not a valid {what}: {', '.join(bad[:5])}")

    return check


def _vocabulary(values: frozenset[str], what: str) -> Any:
    """A validator for a comma-separated list of values from a closed vocabulary."""
    return _each(re.compile(f"^({'|'.join(sorted(values))})$"), f"{what} ({', '.join(sorted(values))})")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class PartnerForm(FlaskForm):
    slug = StringField(
        "Partner id",
        validators=[DataRequired(), SLUG],
        description="Short id used as the TAXII user name, e.g. vncert. Cannot be changed later.",
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    country = StringField(
        "Country (ISO 3166 alpha-2)",
        validators=[Optional(), Regexp(r"^[A-Za-z]{2}$", message="use a two-letter ISO 3166 code such as VN")],
    )
    sector = StringField("Sector", validators=[Optional(), Length(max=64)])
    kind = SelectField("Kind", choices=KIND_CHOICES)
    clearance = SelectField(
        "TLP clearance",
        choices=TLP_CHOICES,
        default="AMBER",
        description="The most restrictive TLP this partner may receive.",
    )
    active = BooleanField("Active", default=True)
    acs_organization = StringField(
        "ACS organisation token",
        validators=[Optional(), Length(max=100), Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", message="e.g. USA.DHS.CISA")],
        description="Matched by ACS 3.0 markings' permitted_organizations and further-sharing scopes.",
    )
    acs_shareability = StringField(
        "ACS shareability (comma-separated)", validators=[_vocabulary(acs.SHAREABILITY, "ACS shareability")]
    )
    acs_entity = StringField("ACS entity (comma-separated)", validators=[_vocabulary(acs.ENTITIES, "ACS entity")])
    confirm = BooleanField("I have seen the effect of this change; save it")

    def values(self) -> dict[str, Any]:
        return {
            "slug": self.slug.data,
            "name": self.name.data.strip(),
            "country": (self.country.data or "").upper(),
            "sector": (self.sector.data or "").strip(),
            "kind": self.kind.data,
            "clearance": self.clearance.data,
            "active": bool(self.active.data),
            "acs_organization": (self.acs_organization.data or "").strip(),
            "acs_shareability": ",".join(sorted(set(split_words(self.acs_shareability.data)))),
            "acs_entity": ",".join(sorted(set(split_words(self.acs_entity.data)))),
        }


class KeyForm(FlaskForm):
    label = StringField(
        "Label",
        validators=[Optional(), Length(max=200)],
        description="What the key is for, e.g. 'Sentinel production'.",
    )
    read_only = BooleanField("Read-only (cannot publish)")
    expires_days = IntegerField("Expires after (days)", validators=[Optional(), NumberRange(min=1, max=3650)])
    cidrs = StringField("Allowed source networks (CIDR, comma-separated)", validators=[Optional(), Length(max=2000)])
    cert_sha256 = StringField(
        "Client certificate SHA-256",
        validators=[Optional(), Regexp(r"^[0-9A-Fa-f:]{64,95}$", message="64 hex digits, colons allowed")],
        description="Bind the key to the partner's client certificate: without it the key does not work.",
    )


class GroupForm(FlaskForm):
    slug = StringField("Group id", validators=[DataRequired(), SLUG])
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    members = TextAreaField(
        "Explicit members (partner ids)", validators=[_each(re.compile(r"^[a-z0-9][a-z0-9_-]*$"), "partner id")]
    )
    countries = StringField(
        "Countries (every partner of these countries is a member)",
        validators=[_each(_COUNTRY, "two-letter country code")],
    )
    confirm = BooleanField("I have seen the effect of this change; save it")

    def values(self) -> dict[str, Any]:
        return {
            "slug": self.slug.data,
            "name": self.name.data.strip(),
            "members": split_words(self.members.data),
            "countries": [c.upper() for c in split_words(self.countries.data)],
        }


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


class CollectionForm(FlaskForm):
    root = SelectField("API root", choices=[])
    alias = StringField("Alias", validators=[DataRequired(), SLUG])
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    max_tlp = SelectField("Maximum TLP", choices=TLP_CHOICES, default="AMBER")
    default_tlp = SelectField("Default TLP (objects without a TLP marking)", choices=TLP_CHOICES, default="AMBER")
    types = StringField("Allowed object types (empty: all)", validators=[_each(_TYPE, "STIX type")])
    readers = StringField(
        "Readers",
        validators=[_each(_GRANT, "grant ('*', group:ID, partner:ID or a partner id)")],
        description="'*' for everyone, group:ID, partner:ID; separated by commas.",
    )
    writers = StringField("Writers", validators=[_each(_GRANT, "grant ('*', group:ID, partner:ID or a partner id)")])
    retention_days = IntegerField(
        "Keep superseded versions for (days)",
        validators=[Optional(), NumberRange(min=1, max=36_500, message="use a whole number of days from 1 to 36500")],
        description="Empty: keep every version. Otherwise the retention run archives the versions a newer version "
        "replaced once they are this old; the newest version of every object is always kept.",
    )
    blocklist_ipv4_prefix = IntegerField(
        "Widest IPv4 network in ip.txt (prefix length)",
        default=BlocklistLimits.ipv4_prefix,
        validators=[
            Optional(),
            NumberRange(*IPV4_PREFIX_BOUNDS, message="use a prefix length from 8 to 32"),
        ],
        description="Empty: 24, so a /24 or narrower is listed and a /16 or 0.0.0.0/0 is not (it stays in the "
        "STIX, CSV and ECS feeds, with the reason). 32: single addresses only.",
    )
    blocklist_ipv6_prefix = IntegerField(
        "Widest IPv6 network in ip.txt (prefix length)",
        default=BlocklistLimits.ipv6_prefix,
        validators=[
            Optional(),
            NumberRange(*IPV6_PREFIX_BOUNDS, message="use a prefix length from 16 to 128"),
        ],
        description="Empty: 48. 128: single addresses only.",
    )
    blocklist_allow_warninglisted = BooleanField(
        "Blocklists list warninglisted values",
        description="Off (the default): a value on a warninglist (a private or special-use address or name such as "
        "10.0.0.1 or c2.internal, a public DNS resolver, a top site, the hash of an empty file) stays in the STIX, "
        "CSV and ECS feeds, with the list's name, but in no blocklist.",
    )
    is_feedback = BooleanField(
        "The API root's feedback collection",
        description="Partners post their sightings and false-positive reports here; each sees only its own and "
        "those about its objects. An API root has at most one.",
    )
    false_positive_threshold = IntegerField(
        "False-positive threshold (partners)",
        default=0,
        validators=[
            Optional(),
            NumberRange(0, MAX_FALSE_POSITIVE_THRESHOLD, message="use a whole number of partners from 0 to 1000"),
        ],
        description="How many distinct partners' false-positive reports flag an indicator of this collection to its "
        "originator. Empty or 0: never.",
    )
    false_positive_withdraw = BooleanField(
        "Withdraw flagged indicators from the blocklists",
        description="At the threshold, the indicator leaves this collection's blocklists until fewer partners "
        "report it (it stays in the STIX, CSV and ECS feeds).",
    )
    confirm = BooleanField("I have seen the effect of this change; save it")

    def validate_default_tlp(self, field: Any) -> None:
        order = list(TLP_LEVELS)
        if (
            field.data in order
            and self.max_tlp.data in order
            and order.index(field.data) > order.index(self.max_tlp.data)
        ):
            raise ValidationError("the default TLP cannot be above the collection's maximum")

    def values(self) -> dict[str, Any]:
        return {
            "root": self.root.data,
            "alias": self.alias.data,
            "title": self.title.data.strip(),
            "description": (self.description.data or "").strip(),
            "max_tlp": self.max_tlp.data,
            "default_tlp": self.default_tlp.data,
            "types": split_words(self.types.data),
            "readers": split_words(self.readers.data),
            "writers": split_words(self.writers.data),
            "retention_days": self.retention_days.data,
            "blocklist_ipv4_prefix": _or(self.blocklist_ipv4_prefix.data, BlocklistLimits.ipv4_prefix),
            "blocklist_ipv6_prefix": _or(self.blocklist_ipv6_prefix.data, BlocklistLimits.ipv6_prefix),
            "blocklist_allow_warninglisted": bool(self.blocklist_allow_warninglisted.data),
            "is_feedback": bool(self.is_feedback.data),
            "false_positive_threshold": _or(self.false_positive_threshold.data, 0),
            "false_positive_withdraw": bool(self.false_positive_withdraw.data),
        }


class RecallForm(FlaskForm):
    reason = TextAreaField(
        "Reason", validators=[Optional(), Length(max=2000)], description="Kept with the recall and in the audit trail."
    )
    confirm = BooleanField("I have checked the recipients above; recall the object from all of them")


class RevokeForm(FlaskForm):
    collection = HiddenField(validators=[DataRequired(message="name the collection")])
    confirm = BooleanField("Revoke it for its originator: every recipient gets the revoked version")


class NewVersionForm(FlaskForm):
    collection = HiddenField(validators=[DataRequired(message="name the collection")])
    body = TextAreaField(
        "The new version (JSON)",
        validators=[DataRequired(message="edit the object's JSON"), Length(max=200_000)],
        description="The hub sets 'modified'; type, id, spec_version, created and created_by_ref stay as they are.",
    )


class CodeForm(FlaskForm):
    """The second step of a login, or the confirmation of a new authenticator."""

    code = StringField(
        "Code",
        validators=[DataRequired(), Length(max=64)],
        description="The 6 digits your authenticator app shows, or one of your recovery codes.",
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "none", "spellcheck": "false"},
    )


class ReauthForm(FlaskForm):
    """The account's current password, asked again before its second factor changes."""

    password = PasswordField(
        "Current password",
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class KeyAnswerForm(FlaskForm):
    """A security key's answer to a login challenge, filled in by the panel's script (webauthn.js)."""

    credential = HiddenField("Security key answer", validators=[DataRequired(), Length(max=20_000)])


class KeyEnrolForm(ReauthForm):
    """The current password and a name, before a new security key is enrolled."""

    name = StringField(
        "Name of the key",
        validators=[Length(max=100)],
        description="To tell your keys apart later, such as “YubiKey on the keyring” or “laptop passkey”.",
    )


class KeyConfirmForm(KeyAnswerForm):
    """A new security key's answer to the registration challenge, with the name given to it."""

    name = HiddenField("Name", validators=[Length(max=100)])


class KeyFirstForm(KeyAnswerForm):
    """The first security key of an account at a login's forced enrolment: its answer and a name for it."""

    name = StringField(
        "Name of the key",
        validators=[Length(max=100)],
        description="To tell your keys apart later, such as “YubiKey on the keyring” or “laptop passkey”.",
    )


class KeyRemoveForm(ReauthForm):
    """The current password and the security key to take off the account."""

    key = SelectField("Security key", coerce=int, validators=[DataRequired()], validate_choice=True)
