"""Deployment checks (`mailer doctor`): each part of an installation tried for real, with a
verdict and its fix, and the DNS records (DKIM, SPF, DMARC) its mail domain should publish.

Every check is a function of plain settings and secrets that returns a :class:`Check`;
nothing here changes the installation (the database is opened only if it exists, the
relay and the bounce endpoint are greeted and left without a message). Nothing looks DNS
up: the records are what to publish, and the SPF and DMARC ones are suggestions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import imaplib
import ipaddress
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import aiosmtplib
import dkim
import sqlalchemy as sa
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailer import db, messages, settings, tokens
from mailer.settings import BounceSettings, Config, SmtpSettings, WebSettings

PROBE_TIMEOUT = 10.0  # seconds, for the bounce endpoint and mailbox and the database
DKIM_TEST_MESSAGE = (
    b"From: doctor@{domain}\r\nTo: doctor@{domain}\r\nSubject: mailer doctor\r\n"
    b"Date: Thu, 04 Mar 2027 09:30:00 +0000\r\nMessage-ID: <doctor@{domain}>\r\n\r\n"
    b"A message signed and verified by `mailer doctor`, never sent.\r\n"
)


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password): works as configured
    WARN = "warn"  # works, but not as production needs it
    FAIL = "fail"  # does not work: mail would not go out, or bounces would not come in


@dataclass(frozen=True)
class Check:
    """One part of the installation: what was found, and what to do about it."""

    name: str
    status: Status
    summary: str
    fix: str = ""


@dataclass(frozen=True)
class DnsRecord:
    """A TXT record for the mail domain's DNS zone."""

    name: str
    value: str
    note: str
    kind: str = "TXT"

    @property
    def zone_line(self) -> str:
        """The record as a zone-file line: strings of at most 255 characters (RFC 1035)."""
        parts = [self.value[i : i + 255] for i in range(0, len(self.value), 255)]
        quoted = " ".join(f'"{part}"' for part in parts)
        return f"{self.name}. IN {self.kind} {quoted}"


@dataclass(frozen=True)
class Report:
    """Every check in order, and the records to publish."""

    checks: tuple[Check, ...]
    records: tuple[DnsRecord, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return any(check.status is Status.FAIL for check in self.checks)

    def as_json(self) -> dict[str, object]:
        return {
            "ok": not self.failed,
            "checks": [
                {"name": c.name, "status": str(c.status), "summary": c.summary, "fix": c.fix}
                for c in self.checks
            ],
            "records": [
                {
                    "name": r.name,
                    "type": r.kind,
                    "value": r.value,
                    "zone": r.zone_line,
                    "note": r.note,
                }
                for r in self.records
            ],
        }


# -- configuration ------------------------------------------------------------------------


def check_configuration(path: Path, environ: Mapping[str, str]) -> tuple[Check, Config | None]:
    """Whether the configuration file loads; the loaded configuration when it does."""
    try:
        config = settings.load(path, environ)
    except settings.ConfigError as exc:
        return Check(
            "configuration",
            Status.FAIL,
            str(exc),
            "correct the key named (config.toml documents every key; MAILER_CONFIG names "
            "another file)",
        ), None
    return Check("configuration", Status.PASS, f"{config.path} is valid"), config


def check_secret_key(secret_key: str | None, var_dir: Path) -> Check:
    """Whether links are signed with a key that production keeps (MAILER_SECRET_KEY)."""
    if secret_key:
        if len(secret_key) < 32:
            return Check(
                "secret key",
                Status.WARN,
                f"{settings.SECRET_KEY_ENV} is only {len(secret_key)} characters long",
                f"use at least 32 random characters: {settings.SECRET_KEY_ENV}=$(openssl "
                "rand -hex 32) (links already sent stop working when it changes)",
            )
        return Check("secret key", Status.PASS, f"{settings.SECRET_KEY_ENV} is set")
    kept = var_dir / tokens.KEY_FILE
    where = f"the key generated in {kept}" if kept.exists() else f"a key generated in {kept}"
    return Check(
        "secret key",
        Status.WARN,
        f"{settings.SECRET_KEY_ENV} is not set: links are signed with {where}",
        f"set {settings.SECRET_KEY_ENV} in the service's environment (to the content of "
        f"{kept} if links were already sent), or keep that file with every backup",
    )


# -- database -----------------------------------------------------------------------------


def check_database(url: str) -> Check:
    """Whether the database answers and its schema is at this version's newest migration."""
    parsed = sa.make_url(db.normalise_url(url))
    shown = parsed.render_as_string(hide_password=True)
    file = db.sqlite_file(url)
    if file is not None and not file.exists():
        return Check(
            "database",
            Status.FAIL,
            f"no SQLite database at {file}",
            "run `mailer init` (or correct [database] url / MAILER_DATABASE_URL)",
        )
    if parsed.get_backend_name() != "sqlite" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(int(PROBE_TIMEOUT))})
    head = db.head_revision()
    try:
        engine = db.create_engine(parsed.render_as_string(hide_password=False))
        try:
            state = db.schema_state(engine)
            revision = db.current_revision(engine)
        finally:
            engine.dispose()
    except (sa.exc.SQLAlchemyError, db.DatabaseLocationError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
        first = reason.splitlines()[0]
        return Check(
            "database",
            Status.FAIL,
            f"cannot use {shown}: {first}",
            "start the database server, or correct [database] url / MAILER_DATABASE_URL "
            "(user, password, host, database name)",
        )
    if state is db.SchemaState.CURRENT:
        return Check("database", Status.PASS, f"{shown} answers; schema at the newest, {head}")
    if state is db.SchemaState.FRESH:
        return Check("database", Status.FAIL, f"{shown} answers but is empty", "run `mailer init`")
    if state is db.SchemaState.UNVERSIONED:
        return Check(
            "database",
            Status.FAIL,
            f"{shown} holds mailer tables without a migration stamp (not made by `mailer init`)",
            "restore a backup, or start from an empty database with `mailer init`",
        )
    return Check(
        "database",
        Status.FAIL,
        f"{shown} is at schema {revision}; this version's newest is {head}",
        "stop the services, back up (`mailer backup` or pg_dump), run `mailer db upgrade`, "
        "start them again",
    )


# -- the relay ----------------------------------------------------------------------------


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reply(exc: Exception) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}".strip()
    return str(exc) or type(exc).__name__


def _tls_problem(where: str, exc: ssl.SSLError) -> Check:
    if isinstance(exc, ssl.SSLCertVerificationError):
        found = f"{where}: its TLS certificate is not trusted ({exc.verify_message})"
        fix = (
            "give the relay a certificate for its host name from a public CA (or add its CA "
            "to this machine's trust store); [smtp] host must be the name on the certificate"
        )
    else:
        found = f"{where}: the TLS handshake failed ({exc})"
        fix = 'match [smtp] tls to the port: "implicit" for 465, "starttls" for 587'
    return Check("relay", Status.FAIL, found, fix)


async def check_relay(smtp: SmtpSettings, password: str | None) -> Check:
    """Greet the relay as the sender does: connect, EHLO, STARTTLS when configured, AUTH
    when a username is set; then QUIT without sending anything."""
    if smtp.transport != "smtp":
        return Check(
            "relay",
            Status.WARN,
            '[smtp] transport = "capture": messages are kept under var/mail, none is sent',
            'for production set [smtp] transport = "smtp" and the relay\'s host and port '
            "(docs/deploy.md: Postfix on this machine)",
        )
    where = f"{smtp.host}:{smtp.port}"
    client = aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        use_tls=smtp.tls == "implicit",
        start_tls=False,
        timeout=smtp.timeout,
    )
    done: list[str] = []
    try:
        try:
            greeting = await client.connect()
        except ssl.SSLError as exc:
            return _tls_problem(where, exc)
        except (aiosmtplib.SMTPException, OSError) as exc:
            if isinstance(exc.__cause__, ssl.SSLError):  # implicit TLS: wrapped by aiosmtplib
                return _tls_problem(where, exc.__cause__)
            return Check(
                "relay",
                Status.FAIL,
                f"nothing answers at {where}: {_reply(exc)}",
                "start the relay (Postfix: `systemctl status postfix`) or correct [smtp] host "
                'and port (and tls: "implicit" for port 465)',
            )
        done.append(f"connected ({greeting.code}{' over TLS' if smtp.tls == 'implicit' else ''})")
        try:
            await client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Check(
                "relay",
                Status.FAIL,
                f"{where} refused EHLO: {_reply(exc)}",
                "the relay must accept ESMTP from this machine (Postfix: mynetworks)",
            )
        done.append("EHLO")
        if smtp.tls == "starttls":
            if not client.supports_extension("starttls"):
                return Check(
                    "relay",
                    Status.FAIL,
                    f"{where} does not offer STARTTLS",
                    "enable TLS on the relay (Postfix: smtpd_tls_security_level = may), or set "
                    '[smtp] tls = "none" for a relay on this machine',
                )
            try:
                await client.starttls()
                await client.ehlo()
            except ssl.SSLError as exc:
                return _tls_problem(where, exc)
            except (aiosmtplib.SMTPException, OSError) as exc:
                return Check(
                    "relay",
                    Status.FAIL,
                    f"{where}: STARTTLS failed: {_reply(exc)}",
                    "check the relay's TLS set-up (its log says why)",
                )
            done.append("STARTTLS")
        if smtp.username:
            if not password:
                return Check(
                    "relay",
                    Status.FAIL,
                    f"[smtp] username is {smtp.username!r} but {settings.SMTP_PASSWORD_ENV} "
                    "is not set",
                    f"set {settings.SMTP_PASSWORD_ENV} in the service's environment, or empty "
                    "[smtp] username for a relay that needs no login",
                )
            if not client.supports_extension("auth"):
                return Check(
                    "relay",
                    Status.FAIL,
                    f"{where} offers no AUTH"
                    + (" on an unencrypted connection" if smtp.tls == "none" else ""),
                    'relays offer AUTH after TLS: set [smtp] tls = "starttls" (587) or '
                    '"implicit" (465); or empty [smtp] username if it needs no login',
                )
            try:
                await client.login(smtp.username, password)
            except aiosmtplib.SMTPAuthenticationError as exc:
                return Check(
                    "relay",
                    Status.FAIL,
                    f"{where} refused the login of {smtp.username!r}: {_reply(exc)}",
                    f"check [smtp] username and {settings.SMTP_PASSWORD_ENV}",
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                return Check(
                    "relay",
                    Status.FAIL,
                    f"{where}: AUTH failed: {_reply(exc)}",
                    f"check [smtp] username and {settings.SMTP_PASSWORD_ENV}, and the relay's log",
                )
            done.append(f"AUTH as {smtp.username}")
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    summary = f"{where}: {', '.join(done)}"
    if smtp.tls == "none" and not _is_local(smtp.host):
        return Check(
            "relay",
            Status.WARN,
            f"{summary}; but messages{' and the password' if smtp.username else ''} cross "
            "the network unencrypted",
            '[smtp] tls = "starttls" (port 587) or "implicit" (465), or a relay on this machine',
        )
    return Check("relay", Status.PASS, summary)


# -- the site -----------------------------------------------------------------------------


def check_base_url(web: WebSettings) -> Check:
    """Whether the links in every message point to an https site readers can reach."""
    host = re.sub(r"^https?://", "", web.base_url).split("/")[0].rsplit(":", 1)[0].strip("[]")
    if _is_local(host):
        return Check(
            "site address",
            Status.WARN,
            f"[web] base_url is {web.base_url}: readers cannot open links to this machine's "
            "own address (unsubscribe, preferences, view online)",
            "set [web] base_url to the site's public https address, e.g. "
            "https://news.lepnetwork.example (docs/deploy.md: nginx)",
        )
    if not web.base_url.startswith("https://"):
        return Check(
            "site address",
            Status.WARN,
            f"[web] base_url is {web.base_url}: unsubscribe links and the staff login are not "
            "encrypted",
            "serve the site over TLS behind a reverse proxy and set [web] base_url to its "
            "https address (docs/deploy.md: nginx)",
        )
    return Check("site address", Status.PASS, f"[web] base_url is https: {web.root}")


# -- DKIM, SPF, DMARC ---------------------------------------------------------------------


def rsa_public_key(private_key: bytes) -> tuple[str, int]:
    """The public half of a PEM RSA private key (PKCS#1 or PKCS#8) as the base64 DER
    SubjectPublicKeyInfo a DKIM record's ``p=`` holds, and the key's size in bits.

    :raises ValueError: the text is not a PEM RSA private key.
    """
    try:
        key = serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM RSA private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not a PEM RSA private key (DKIM here signs with rsa-sha256)")
    info = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(info).decode("ascii"), key.key_size


def dkim_record(selector: str, domain: str, public_key: str) -> DnsRecord:
    """The DKIM key record to publish at SELECTOR._domainkey.DOMAIN."""
    value = f"v=DKIM1; k=rsa; p={public_key}"
    note = "publish it before the first signed message goes out"
    if len(value) > 255:
        note += (
            "; it is longer than one DNS string (255 characters): a zone file splits it as "
            "shown, most DNS hosts' forms do it for you"
        )
    return DnsRecord(f"{selector}._domainkey.{domain}", value, note)


def check_dkim(
    selector: str, domain: str, private_key: bytes | None
) -> tuple[Check, DnsRecord | None]:
    """Whether the DKIM key loads and signs as the sender signs; the record to publish."""
    where = f"{settings.DKIM_KEY_ENV} or {settings.DKIM_KEY_FILE_ENV}"
    if not selector:
        return Check(
            "DKIM",
            Status.WARN,
            "[dkim] selector is empty: messages are not DKIM-signed"
            + (" (a private key is set but unused)" if private_key else ""),
            f"choose a selector (e.g. mail2027), set [dkim] selector and {where} (a key made "
            "with `openssl genrsa -out dkim.pem 2048`), then publish the record shown",
        ), None
    if not private_key:
        return Check(
            "DKIM",
            Status.FAIL,
            f"[dkim] selector is {selector!r} but no private key is set: messages go out unsigned",
            f"set {where} in the service's environment, or empty [dkim] selector",
        ), None
    try:
        public, bits = rsa_public_key(private_key)
    except ValueError as exc:
        return Check(
            "DKIM",
            Status.FAIL,
            f"the DKIM key does not load: {exc}",
            f"{where} must hold an RSA private key in PEM (`openssl genrsa -out dkim.pem 2048`)",
        ), None
    record = dkim_record(selector, domain, public)
    message = DKIM_TEST_MESSAGE.replace(b"{domain}", domain.encode("ascii"))
    name = f"{record.name}.".encode("ascii")

    def lookup(asked: bytes, timeout: int = 5) -> bytes | None:
        return record.value.encode("ascii") if asked == name else None

    try:
        signed = messages.dkim_sign(
            message, selector=selector, domain=domain, private_key=private_key
        )
        verified = dkim.verify(signed, dnsfunc=lookup, minkey=1024)
    except dkim.DKIMException as exc:
        return Check(
            "DKIM",
            Status.FAIL,
            f"the DKIM key loads but does not sign: {exc}",
            f"use an RSA key of at least 2048 bits in {where}",
        ), record
    if not verified:
        return Check(
            "DKIM",
            Status.FAIL,
            "a test message signed with the key does not verify against its own public key",
            f"make a new key (`openssl genrsa -out dkim.pem 2048`) for {where}",
        ), record
    summary = f"the {bits}-bit key signs; its public key goes at {record.name}"
    if bits < 2048:
        return Check(
            "DKIM",
            Status.WARN,
            f"{summary}, but {bits} bits is weak (RFC 8301 asks for at least 1024, "
            "mailbox providers for 2048)",
            "make a 2048-bit key (`openssl genrsa -out dkim.pem 2048`) under a new selector",
        ), record
    return Check("DKIM", Status.PASS, summary), record


def spf_record(domain: str, relay_host: str) -> DnsRecord:
    """A suggested SPF record for the envelope sender's domain (bounces+…@DOMAIN)."""
    caveat = (
        "a suggestion: a domain has only one SPF record, so if it already has one (its "
        "office mail), add this mechanism to it; ~all until reports show every sender, then -all"
    )
    try:
        address = ipaddress.ip_address(relay_host)
    except ValueError:
        return DnsRecord(
            domain,
            f"v=spf1 a:{relay_host} ~all",
            f"{caveat}. If {relay_host} is an email service provider, use the include: it "
            "documents instead",
        )
    if not address.is_global:
        return DnsRecord(
            domain,
            "v=spf1 ip4:PUBLIC-ADDRESS ~all",
            f"{caveat}. The relay ({relay_host}) is on this machine or its network: put the "
            "public address its mail leaves from in place of PUBLIC-ADDRESS (ip6: for IPv6)",
        )
    mechanism = "ip4" if address.version == 4 else "ip6"
    return DnsRecord(domain, f"v=spf1 {mechanism}:{address} ~all", caveat)


def dmarc_record(domain: str, report_to: str) -> DnsRecord:
    """A suggested DMARC record: monitoring only, aggregate reports to the contact address."""
    note = (
        "a suggestion: p=none only asks receivers for reports; once they show SPF and DKIM "
        "passing for all your mail, move to p=quarantine"
    )
    report_domain = report_to.rpartition("@")[2].lower()
    if report_domain != domain and not report_domain.endswith(f".{domain}"):
        note += (
            f". Reports to {report_domain} are sent only if it publishes "
            f'{domain}._report._dmarc.{report_domain} TXT "v=DMARC1" (RFC 7489 7.1)'
        )
    return DnsRecord(f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:{report_to}", note)


# -- bounces ------------------------------------------------------------------------------


async def check_bounce_endpoint(host: str, port: int, domain: str) -> Check:
    """Whether mailer's bounce endpoint answers and takes mail for bounces@DOMAIN (it is
    greeted and asked for the recipient; no message is sent)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    where = f"{target}:{port}"
    client = aiosmtplib.SMTP(
        hostname=target, port=port, use_tls=False, start_tls=False, timeout=PROBE_TIMEOUT
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Check(
            "bounces",
            Status.FAIL,
            f"the bounce endpoint does not answer at {where}: {_reply(exc)}",
            "run the daemon (`mailer daemon`, or `mailer serve` with it) with [bounces] "
            'receive = "smtp", or `mailer bounces serve`; check [bounces] host and port',
        )
    try:
        await client.ehlo()
        await client.mail("")
        await client.rcpt(f"bounces@{domain}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Check(
            "bounces",
            Status.FAIL,
            f"{where} answers but refuses bounces@{domain}: {_reply(exc)}",
            "another server holds the port, or it serves another [network] domain: run "
            "mailer's endpoint there (or move [bounces] port)",
        )
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    return Check(
        "bounces",
        Status.PASS,
        f"the bounce endpoint at {where} takes mail for bounces+…@{domain}",
    )


def check_bounce_mailbox(settings_: BounceSettings, password: str | None) -> Check:
    """Whether the bounce mailbox accepts the login and has its folder (read only)."""
    if not settings_.imap_host or not settings_.imap_username:
        return Check(
            "bounces",
            Status.FAIL,
            '[bounces] receive = "imap" but imap_host or imap_username is empty',
            "set [bounces] imap_host and imap_username (the password: "
            f"{settings.IMAP_PASSWORD_ENV})",
        )
    if not password:
        return Check(
            "bounces",
            Status.FAIL,
            f"{settings.IMAP_PASSWORD_ENV} is not set",
            f"set {settings.IMAP_PASSWORD_ENV} in the service's environment",
        )
    where = f"{settings_.imap_username}@{settings_.imap_host}:{settings_.imap_port}"
    client: imaplib.IMAP4 | None = None
    try:
        if settings_.imap_tls:
            client = imaplib.IMAP4_SSL(
                settings_.imap_host,
                settings_.imap_port,
                ssl_context=ssl.create_default_context(),
                timeout=PROBE_TIMEOUT,
            )
        else:
            client = imaplib.IMAP4(settings_.imap_host, settings_.imap_port, timeout=PROBE_TIMEOUT)
        client.login(settings_.imap_username, password)
        status, data = client.select(settings_.imap_folder, readonly=True)
        if status != "OK":
            detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
            return Check(
                "bounces",
                Status.FAIL,
                f"the mailbox {where} has no folder {settings_.imap_folder!r}: {detail}",
                "correct [bounces] imap_folder",
            )
        count = int(data[0] or 0) if data and isinstance(data[0], bytes) else 0
    except ssl.SSLError as exc:
        return Check(
            "bounces",
            Status.FAIL,
            f"the mailbox {where}: TLS failed ({exc})",
            "match [bounces] imap_tls to the port: true for 993, false for 143",
        )
    except OSError as exc:
        return Check(
            "bounces",
            Status.FAIL,
            f"the mailbox {where} does not answer: {exc}",
            "correct [bounces] imap_host and imap_port",
        )
    except imaplib.IMAP4.error as exc:
        return Check(
            "bounces",
            Status.FAIL,
            f"the mailbox {where} refused the login: {exc}",
            f"check [bounces] imap_username and {settings.IMAP_PASSWORD_ENV}",
        )
    finally:
        if client is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.logout()
    return Check(
        "bounces",
        Status.PASS,
        f"logged in to {where}; {settings_.imap_folder} holds {count} messages",
    )


async def check_bounces(settings_: BounceSettings, domain: str, password: str | None) -> Check:
    """The bounce intake as configured: the endpoint, the mailbox, or none."""
    if settings_.receive == "smtp":
        return await check_bounce_endpoint(settings_.host, settings_.port, domain)
    if settings_.receive == "imap":
        return await asyncio.to_thread(check_bounce_mailbox, settings_, password)
    return Check(
        "bounces",
        Status.WARN,
        '[bounces] receive = "none": bounces and complaints are not taken in, so bad '
        "addresses are mailed again and complaints are not acted on",
        'set [bounces] receive = "smtp" (the relay\'s bounce route to the endpoint) or '
        '"imap" (a bounce mailbox); docs/deploy.md: Postfix',
    )


# -- all of it ----------------------------------------------------------------------------


def examine(path: Path, environ: Mapping[str, str]) -> Report:
    """Every check of the installation configured at ``path``, in order."""
    loaded, config = check_configuration(path, environ)
    if config is None:
        return Report((loaded,))
    s = config.settings
    checks = [
        loaded,
        check_secret_key(config.secrets.secret_key, config.var_dir),
        check_database(config.database_url),
    ]

    async def network() -> tuple[Check, Check]:
        relay = await check_relay(s.smtp, config.secrets.smtp_password)
        intake = await check_bounces(s.bounces, s.network.domain, config.secrets.imap_password)
        return relay, intake

    relay, intake = asyncio.run(network())
    signing, record = check_dkim(s.dkim.selector, s.network.domain, config.secrets.dkim_private_key)
    checks += [relay, check_base_url(s.web), signing, intake]
    records = [
        *([record] if record else []),
        spf_record(s.network.domain, s.smtp.host),
        dmarc_record(s.network.domain, s.network.contact_email),
    ]
    return Report(tuple(checks), tuple(records))
