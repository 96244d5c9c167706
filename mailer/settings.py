"""Deployment settings: ``config.toml`` read once into frozen, typed objects.

Every key is declared here with its help text; ``config.toml`` documents each
one in a comment. Secrets never live in the file: they come from ``MAILER_*``
environment variables (see :class:`Secrets`).

Errors::

    ConfigError            the file is missing, is not TOML, or a key is wrong
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_ENV = "MAILER_CONFIG"
DATABASE_URL_ENV = "MAILER_DATABASE_URL"
SECRET_KEY_ENV = "MAILER_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)
SMTP_PASSWORD_ENV = "MAILER_SMTP_PASSWORD"  # noqa: S105
DKIM_KEY_ENV = "MAILER_DKIM_PRIVATE_KEY"
IMAP_PASSWORD_ENV = "MAILER_IMAP_PASSWORD"  # noqa: S105
DKIM_KEY_FILE_ENV = "MAILER_DKIM_KEY_FILE"


class ConfigError(Exception):
    """The configuration file cannot be used; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class NetworkSettings(_Section):
    """Who sends: printed in every footer and used to build addresses."""

    name: str = Field(
        "LEP Network", min_length=1, description="The sender's name, as readers know it."
    )
    postal_address: str = Field(
        "1 Example Street, London, SW1A 0AA",
        min_length=1,
        description="Postal address printed in every footer (PECR: sender's identity).",
    )
    contact_email: str = Field(
        "info@lepnetwork.example",
        min_length=3,
        description="Address readers can write to; printed in every footer.",
    )
    domain: str = Field(
        "lepnetwork.example",
        min_length=3,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$",
        description="Our mail domain: From addresses, Message-IDs, List-Ids and VERP.",
    )
    sender_id: str = Field(
        "lepnetwork",
        pattern=r"^[a-z0-9-]{5,15}$",
        description="Stable sender id (5-15 characters) closing every Feedback-ID header.",
    )


class DatabaseSettings(_Section):
    """Where the contact database and the outbox live."""

    url: str = Field(
        "sqlite:///var/mailer.db",
        min_length=1,
        description=(
            "SQLAlchemy URL. A relative SQLite path is relative to this file. "
            "Overridden by MAILER_DATABASE_URL."
        ),
    )
    echo: bool = Field(False, description="Log every SQL statement (for debugging).")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+", "postgres:")):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return url


class PathsSettings(_Section):
    """Folders the engine reads and writes; relative paths are relative to this file."""

    lists: str = Field(
        "lists", description="Audience data: leps.csv, organisations.csv, publication files."
    )
    var: str = Field("var", description="Runtime data: the SQLite database, captured mail.")
    templates: str = Field("templates", description="Email templates (Jinja2).")


class WebSettings(_Section):
    """The public site that links in emails point to."""

    base_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description=(
            "Public address of the site, used for unsubscribe, preferences, privacy and "
            "view-online links in emails (https in production)."
        ),
    )

    host: str = Field("127.0.0.1", min_length=1, description="Address `mailer serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `mailer serve` listens on.")
    secure_cookies: bool = Field(
        False,
        description=(
            "Send the staff cookies over https only even though base_url is http (they "
            "always are when base_url is https)."
        ),
    )
    session_hours: float = Field(
        8.0, gt=0, le=720, description="Hours a staff login lasts without activity."
    )
    session_days: float = Field(
        7.0, gt=0, le=90, description="Days a staff login lasts at most, however active."
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        strict=False,
        description=(
            "Addresses (or networks, e.g. 10.0.0.0/8) of reverse proxies whose "
            "X-Forwarded-For and X-Forwarded-Proto headers are believed; empty: none, the "
            "client is whoever connects."
        ),
    )
    form_limit_kb: int = Field(
        64, ge=4, le=4096, description="Largest request body a public page accepts, in KB."
    )
    upload_limit_mb: int = Field(
        20, ge=1, le=2048, description="Largest contacts file the console accepts, in MB."
    )
    image_limit_mb: int = Field(
        5, ge=1, le=100, description="Largest image the console's media library accepts, in MB."
    )

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry as uvicorn reads it: an address, or a network in its normal form
        (10.0.0.1/8 becomes 10.0.0.0/8; uvicorn would never match the former)."""
        normal = []
        for entry in value:
            try:
                if "/" in entry:
                    normal.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
                else:
                    normal.append(str(ipaddress.ip_address(entry.strip())))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)"
                ) from None
        return tuple(normal)

    @property
    def https(self) -> bool:
        """Whether cookies are marked Secure: the site is https, or a setting says so."""
        return self.secure_cookies or self.base_url.startswith("https://")


class SignupSettings(_Section):
    """The public sign-up for the external newsletter (double opt-in)."""

    wording_version: str = Field(
        "2026-11", min_length=1, max_length=60, description="Version of the consent wording."
    )
    wording: str = Field(
        "Yes, I would like the LEP Network Newsletter by email, up to ten times a year. "
        "I can unsubscribe at any time.",
        min_length=10,
        description="The consent statement beside the sign-up button, kept with each consent.",
    )
    confirm_hours: float = Field(
        72.0, gt=0, le=720, description="Hours a confirmation link stays valid."
    )
    per_ip_per_hour: int = Field(
        5, ge=1, description="Sign-ups accepted from one network address in an hour."
    )
    per_address_per_day: int = Field(
        3, ge=1, description="Confirmation emails one address can receive in a day."
    )


class ContributionSettings(_Section):
    """What LEP contacts send in for the bulletin through their signed link."""

    per_day: int = Field(
        5, ge=1, le=100, description="Contributions one contact may send in a day (24 hours)."
    )
    headline_chars: int = Field(
        150, ge=20, le=300, description="Longest headline of a contribution, in characters."
    )
    text_chars: int = Field(
        3000, ge=100, le=20000, description="Longest text of a contribution, in characters."
    )


class StaffSettings(_Section):
    """Staff accounts in the console."""

    lockout_after: int = Field(
        5,
        ge=1,
        description=(
            "Failed logins (for an account, or from one client address) before each further "
            "attempt has to wait: 1 s, then twice as long each time."
        ),
    )
    lockout_minutes: float = Field(
        15.0, gt=0, description="The longest wait between attempts, in minutes."
    )
    approver_may_be_editor: bool = Field(
        False, description="Whether the last editor of an issue may approve it too."
    )


class SmtpSettings(_Section):
    """How messages leave: the built-in capture, or an SMTP relay."""

    transport: Literal["capture", "smtp"] = Field(
        "capture",
        description=(
            "'capture' keeps every message as an .eml file under var/mail (nothing is sent); "
            "'smtp' hands messages to the relay below."
        ),
    )
    host: str = Field("127.0.0.1", min_length=1, description="SMTP relay host.")
    port: int = Field(25, ge=1, le=65535, description="SMTP relay port (25, 465 or 587).")
    tls: Literal["none", "starttls", "implicit"] = Field(
        "none",
        description="'starttls' (port 587), 'implicit' (port 465) or 'none' (a local relay).",
    )
    username: str = Field(
        "", description="SMTP login (empty: no login); the password is MAILER_SMTP_PASSWORD."
    )
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds to wait for the relay.")
    connections: int = Field(
        8, ge=1, le=256, description="SMTP connections kept open to the relay at once."
    )
    messages_per_connection: int = Field(
        1000, ge=1, description="Messages sent over one connection before it is renewed."
    )
    rate: float = Field(
        0.0, ge=0, description="Most messages per second overall (0: as fast as the relay takes)."
    )
    per_domain: int = Field(
        8, ge=1, description="Most messages in flight at once to one recipient domain."
    )


class DeliverySettings(_Section):
    """The outbox: batches, retries and crash recovery."""

    batch_size: int = Field(
        200, ge=1, le=10_000, description="Deliveries a sender claims from the outbox at once."
    )
    retry_base_seconds: int = Field(
        300,
        ge=1,
        description="First wait after a temporary failure (4xx); doubled for each new attempt.",
    )
    retry_max_seconds: int = Field(
        21_600, ge=1, description="Longest wait between two attempts of one delivery."
    )
    retry_deadline_hours: float = Field(
        72.0, gt=0, description="A delivery still failing temporarily after this long fails."
    )
    claim_timeout_seconds: int = Field(
        300,
        ge=5,
        description=(
            "The lease on claimed deliveries, renewed by their sender's heartbeat: once it "
            "has run out (the sender died, hangs or was paused) another sender takes them; "
            "the sender itself stops handing them over a margin (a fifth, at least 2 s) "
            "before. Those it had begun to hand over are sent again, counted as in doubt."
        ),
    )


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = r"^([01]\d|2[0-3]):[0-5]\d$"


def _months(months: tuple[int, ...]) -> tuple[int, ...]:
    if any(not 1 <= m <= 12 for m in months):
        raise ValueError("expected month numbers from 1 to 12")
    return months


class CalendarSettings(_Section):
    """The editorial calendar and the daemon that keeps it."""

    timezone: str = Field("Europe/London", description="Time zone of every send time and deadline.")
    grace_hours: float = Field(
        6.0,
        ge=0,
        description=(
            "If the daemon was down at a slot, it still sends within this many hours after; "
            "later, the slot is marked missed and staff are alerted."
        ),
    )
    leader_lease_seconds: float = Field(
        60.0,
        ge=5,
        le=600,
        description=(
            "Seconds a leading daemon's lead lasts without renewal (renewed every quarter of "
            "it): a hung or cut-off leader is replaced within this time."
        ),
    )
    alert_addresses: tuple[str, ...] = Field(
        ("comms@lepnetwork.example",),
        strict=False,
        description="Staff who receive reminders and alerts (missed slots).",
    )
    deadline_time: str = Field(
        "17:00", pattern=_TIME, description="Time of day a content deadline falls."
    )
    reminder_time: str = Field(
        "08:00", pattern=_TIME, description="Time of the reminder on the morning of a slot."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as Europe/London") from None
        return zone

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a time zone object: every local date and time uses it."""
        return ZoneInfo(self.timezone)


class BulletinCadence(_Section):
    """The internal bulletin's fixed rhythm."""

    weekday: Literal[_WEEKDAYS] = Field(  # type: ignore[valid-type]
        "thursday", description="Day of the week bulletins go out."
    )
    interval_days: int = Field(14, ge=1, le=62, description="Days between two bulletins.")
    send_time: str = Field("09:30", pattern=_TIME, description="Send time (calendar time zone).")
    skip_months: tuple[int, ...] = Field(
        (8, 12), strict=False, description="Months without bulletins (August and December)."
    )
    new_year_start_day: int = Field(
        4,
        ge=1,
        le=28,
        description=(
            "In January the rhythm restarts on the first chosen weekday on or after this day "
            "(4: after the New Year holidays); after other skipped months, on the first "
            "chosen weekday of the month."
        ),
    )
    per_year: int = Field(22, ge=1, description="Bulletins promised a year (warned if not met).")
    deadline_working_days: int = Field(
        2, ge=0, le=20, description="Content deadline: working days before the slot."
    )

    _check_months = field_validator("skip_months")(_months)


class NewsletterCadence(_Section):
    """The external e-newsletter: slots planned by staff, with a monthly default pattern."""

    weekday: Literal[_WEEKDAYS] = Field(  # type: ignore[valid-type]
        "thursday", description="Day of the week of the monthly default pattern."
    )
    week_of_month: int = Field(
        3, ge=1, le=4, description="Which such weekday of the month (3: the third)."
    )
    send_time: str = Field("10:00", pattern=_TIME, description="Send time (calendar time zone).")
    skip_months: tuple[int, ...] = Field(
        (8, 12), strict=False, description="Months the default pattern leaves out."
    )
    max_per_year: int = Field(10, ge=1, description="Most newsletters in a calendar year.")
    deadline_working_days: int = Field(
        2, ge=0, le=20, description="Content deadline: working days before the slot."
    )

    _check_months = field_validator("skip_months")(_months)


class PublicationsSettings(_Section):
    """Each publication's rhythm."""

    bulletin: BulletinCadence = Field(
        default_factory=BulletinCadence, description="The internal bulletin."
    )
    newsletter: NewsletterCadence = Field(
        default_factory=NewsletterCadence, description="The external e-newsletter."
    )


class BounceSettings(_Section):
    """Bounces and complaints: where they arrive, and the policy that acts on them."""

    receive: Literal["none", "smtp", "imap"] = Field(
        "none",
        description=(
            "What the daemon runs: 'smtp' the bounce endpoint below, 'imap' a fetch of the "
            "mailbox below every fetch_minutes, 'none' neither (run the commands by hand)."
        ),
    )
    host: str = Field(
        "127.0.0.1", min_length=1, description="Address the bounce endpoint listens on."
    )
    port: int = Field(2525, ge=1, le=65535, description="Port the bounce endpoint listens on.")
    imap_host: str = Field("", description="IMAP server of a mailbox that receives bounces.")
    imap_port: int = Field(
        993, ge=1, le=65535, description="IMAP port (993 with TLS, 143 without)."
    )
    imap_tls: bool = Field(True, description="Connect to the IMAP server over TLS.")
    imap_username: str = Field("", description="IMAP login; the password is MAILER_IMAP_PASSWORD.")
    imap_folder: str = Field("INBOX", min_length=1, description="Folder to read bounces from.")
    fetch_minutes: float = Field(10.0, gt=0, description="Minutes between two IMAP fetches.")
    temporary_score: float = Field(0.5, ge=0, description="Score a temporary failure adds.")
    threshold: float = Field(
        5.0, gt=0, description="Score at which a contact is disabled and staff are told."
    )
    stale_days: float = Field(
        7.0, gt=0, description="Days without a bounce after which a score starts again at 0."
    )
    keep_raw_days: float = Field(
        30.0, ge=0, description="Days the raw bounce or complaint report is kept."
    )


class PrivacySettings(_Section):
    """Data protection duties."""

    retention_days: float = Field(
        730.0,
        gt=0,
        description="Days after which delivery details (who got what) are reduced to counts.",
    )


class ReportSettings(_Section):
    """The reports staff read: reach per organisation, what was read, the year."""

    min_group: int = Field(
        5,
        ge=1,
        le=1000,
        description="Fewest recipients an organisation must have had in an issue for its "
        "clicks and views to be shown on their own; smaller ones are added to 'other'.",
    )
    count_clicks: bool = Field(
        True,
        description="Send the content links of an issue's HTML part through counted "
        "{base_url}/r/ redirects naming the issue, the link and the reader's organisation "
        "(never the person); false: every link is direct and nothing is counted.",
    )


class DkimSettings(_Section):
    """DKIM signing; the private key comes from the environment."""

    selector: str = Field(
        "",
        pattern=r"^([a-z0-9][a-z0-9-]*)?$",
        description=(
            "DKIM selector (empty: do not sign). The key comes from MAILER_DKIM_PRIVATE_KEY "
            "(PEM text) or MAILER_DKIM_KEY_FILE (a path)."
        ),
    )


class ImportSettings(_Section):
    """How contact CSV files are read."""

    batch_size: int = Field(
        1000, ge=1, le=100_000, description="Rows written to the database per statement."
    )
    max_reported_errors: int = Field(
        200,
        ge=1,
        description="Rejected rows listed in full on screen; the rest are counted.",
    )
    keep_upload_minutes: int = Field(
        60,
        ge=1,
        le=24 * 60,
        description=(
            "How long the console keeps a file checked by a dry run, for its apply step "
            "(and the problems report for download)."
        ),
    )


class ProofSettings(_Section):
    """Test sends of an issue."""

    seed_addresses: tuple[str, ...] = Field(
        (),
        strict=False,
        description=(
            "Addresses the console offers for test sends besides the staff accounts, as "
            '"Name <address>" (each greeted by that name) or a bare address.'
        ),
    )

    @field_validator("seed_addresses")
    @classmethod
    def _seeds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            _, address = parseaddr(entry)
            try:
                if any(ch in entry for ch in "\r\n"):
                    raise EmailNotValidError("a line break")
                validate_email(address, check_deliverability=False, allow_smtputf8=False)
            except EmailNotValidError as exc:
                raise ValueError(
                    f'{entry!r} is not "Name <address>" or an address: {exc}'
                ) from None
        return value


class OpsSettings(_Section):
    """What an operator's tools read: health, readiness and metrics."""

    listen: str = Field(
        "",
        pattern=r"^$|^[^\s:]+:\d{1,5}$",
        description=(
            "HOST:PORT where a bare `mailer daemon` or `mailer worker` answers /healthz, "
            "/readyz and /metrics (empty: off; `mailer serve` answers them on its own port)."
        ),
    )
    metrics_allow: tuple[str, ...] = Field(
        ("127.0.0.1", "::1"),
        strict=False,
        description="Client addresses (or networks) that may read /metrics.",
    )
    tick_stale_seconds: float = Field(
        180.0,
        gt=0,
        description="A leader whose last tick is older than this is not ready (/readyz).",
    )

    @field_validator("metrics_allow")
    @classmethod
    def _allowed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value


class Settings(_Section):
    """The whole configuration file."""

    network: NetworkSettings = Field(
        default_factory=NetworkSettings, description="The sending organisation."
    )
    database: DatabaseSettings = Field(
        default_factory=DatabaseSettings, description="The database."
    )
    paths: PathsSettings = Field(default_factory=PathsSettings, description="Folders.")
    web: WebSettings = Field(default_factory=WebSettings, description="The public site.")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings, description="Outgoing mail.")
    delivery: DeliverySettings = Field(default_factory=DeliverySettings, description="The outbox.")
    dkim: DkimSettings = Field(default_factory=DkimSettings, description="DKIM signing.")
    signup: SignupSettings = Field(
        default_factory=SignupSettings, description="The public newsletter sign-up."
    )
    staff: StaffSettings = Field(default_factory=StaffSettings, description="Staff accounts.")
    contributions: ContributionSettings = Field(
        default_factory=ContributionSettings, description="Contributions from LEPs."
    )
    bounces: BounceSettings = Field(
        default_factory=BounceSettings, description="Bounces and complaints."
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings, description="Privacy.")
    reports: ReportSettings = Field(
        default_factory=ReportSettings, description="Reports: reach, what was read."
    )
    calendar: CalendarSettings = Field(
        default_factory=CalendarSettings, description="The editorial calendar and daemon."
    )
    ops: OpsSettings = Field(default_factory=OpsSettings, description="Health and metrics.")
    publications: PublicationsSettings = Field(
        default_factory=PublicationsSettings, description="Each publication's rhythm."
    )
    proofs: ProofSettings = Field(default_factory=ProofSettings, description="Test sends.")
    contacts_import: ImportSettings = Field(
        default_factory=ImportSettings,
        alias="import",
        description="Contact CSV imports.",
    )


@dataclass(frozen=True)
class Secrets:
    """Secrets, read from the environment only (never from config.toml)."""

    secret_key: str | None
    smtp_password: str | None
    dkim_private_key: bytes | None = None
    imap_password: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Secrets:
        """Read the secrets.

        :raises ConfigError: MAILER_DKIM_KEY_FILE names a file that cannot be read.
        """
        key = environ.get(DKIM_KEY_ENV)
        key_file = environ.get(DKIM_KEY_FILE_ENV)
        dkim_key = key.encode() if key else None
        if dkim_key is None and key_file:
            try:
                dkim_key = Path(key_file).read_bytes()
            except OSError as exc:
                raise ConfigError(f"{DKIM_KEY_FILE_ENV}: cannot read {key_file}: {exc}") from exc
        return cls(
            secret_key=environ.get(SECRET_KEY_ENV) or None,
            smtp_password=environ.get(SMTP_PASSWORD_ENV) or None,
            dkim_private_key=dkim_key,
            imap_password=environ.get(IMAP_PASSWORD_ENV) or None,
        )


@dataclass(frozen=True)
class Config:
    """Settings plus where they came from, with paths resolved."""

    path: Path
    settings: Settings
    secrets: Secrets
    database_url: str
    lists_dir: Path
    var_dir: Path
    templates_dir: Path


def _format_error(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    if len(loc) > 2 and not any(part.isdigit() for part in loc):
        loc = [".".join(loc[:-1]), loc[-1]]  # a nested table: [publications.bulletin] key
    if len(loc) >= 2:
        where = f"[{loc[0]}] {'.'.join(loc[1:])}"
    elif loc:
        where = f"[{loc[0]}]"
    else:
        where = "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    expected = error["msg"]
    if error["type"] == "value_error":
        expected = expected.removeprefix("Value error, ")
    got = error.get("input")
    if isinstance(got, dict):
        return f"{where}: {expected}"
    return f"{where}: {expected} (got {got!r})"


def _resolve_sqlite(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    if rest in ("", ":memory:") or rest.startswith("/"):
        return url
    return prefix + str((base / rest).resolve())


def parse(text: str, *, path: Path, environ: Mapping[str, str]) -> Config:
    """Parse config text (as found at ``path``) into a :class:`Config`.

    :raises ConfigError: the text is not TOML or a key is unknown or invalid.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  {_format_error(e)}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid settings:\n{problems}") from exc
    base = path.parent.resolve()
    url = environ.get(DATABASE_URL_ENV) or settings.database.url
    if environ.get(DATABASE_URL_ENV):
        try:
            DatabaseSettings(url=url)
        except ValidationError as exc:
            raise ConfigError(
                f"{DATABASE_URL_ENV}: expected a sqlite:/// or postgresql:// URL"
            ) from exc
    return Config(
        path=path,
        settings=settings,
        secrets=Secrets.from_environ(environ),
        database_url=_resolve_sqlite(url, base),
        lists_dir=(base / settings.paths.lists).resolve(),
        var_dir=(base / settings.paths.var).resolve(),
        templates_dir=(base / settings.paths.templates).resolve(),
    )


def config_path(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The configuration file to use: ``$MAILER_CONFIG`` or ``./config.toml``."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_ENV)
    if named:
        return Path(named)
    return (cwd or Path.cwd()) / "config.toml"


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration once.

    :raises ConfigError: the file is missing, unreadable or invalid.
    """
    env = os.environ if environ is None else environ
    target = path or config_path(env)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        hint = (
            f" (named by {CONFIG_ENV})"
            if env.get(CONFIG_ENV)
            else f"; run from the project folder or set {CONFIG_ENV}"
        )
        raise ConfigError(f"{target}: no such configuration file{hint}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read: {exc}") from exc
    return parse(text, path=target, environ=env)


def documented_keys() -> Iterator[tuple[str, str, str]]:
    """Every (section, key, help text) the file may hold, in declaration order."""

    def walk(model: type[BaseModel], table: str) -> Iterator[tuple[str, str, str]]:
        for key, field in model.model_fields.items():
            inner = field.annotation
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from walk(inner, f"{table}.{field.alias or key}" if table else key)
            else:
                yield table, key, field.description or ""

    for section_name, section in Settings.model_fields.items():
        model = section.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        yield from walk(model, section.alias or section_name)
