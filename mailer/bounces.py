"""Bounces and complaints: read the reports, name the delivery, record them, apply the policy.

Reports arrive at the SMTP bounce endpoint (aiosmtpd, for the VERP addresses
``bounces+TOKEN@domain``) or in an IMAP mailbox. Delivery status notifications (RFC 3464
and the common non-standard shapes) are read by flufl.bounce; complaint reports (ARF,
``report-type=feedback-report``) are recognised here. Our own VERP token names the
delivery, and so the contact, whatever the report says; a report without one (anyone
can write a report naming an address) is recorded for staff but changes nothing.

The same intake takes the ``mailto:`` unsubscribe every message lists in
``List-Unsubscribe`` (RFC 2369): mail to ``unsubscribe@domain`` whose subject carries a
reader's token unsubscribes that reader, through the same rule as the one-click link
(:func:`mailer.subscriptions.unsubscribe`); anything else sent there is ignored.

Policy (GNU Mailman's model): a permanent failure or a complaint suppresses the address
at once; a temporary failure adds to the contact's score at most once a day, a score
past the threshold disables the contact and staff are told; a score with no bounce for
``stale_days`` starts again from nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from enum import StrEnum

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from flufl.bounce import all_failures
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import audit, clock, contacts, subscriptions
from mailer.contacts import email_hash, suppress
from mailer.db import rowcount
from mailer.models import (
    BounceEvent,
    BounceKind,
    Contact,
    ContactStatus,
    Delivery,
    Organisation,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from mailer.settings import BounceSettings
from mailer.tokens import BadToken, TokenSigner

log = logging.getLogger(__name__)
ACTOR = "bounce processor"
# Reports are small; a complaint quotes one message. Larger mail is refused (552).
MAX_REPORT_BYTES = 10 * 1024 * 1024
_VERP = re.compile(r"^bounces\+([0-9a-z-]+)@", re.IGNORECASE)
UNSUBSCRIBE = "unsubscribe"  # the local part of the List-Unsubscribe mailto address
_TOKEN = re.compile(r"\bunsubscribe\s+([0-9a-f]+-[0-9a-f]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)


class Verdict(StrEnum):
    SUPPRESSED = "suppressed"
    SCORED = "scored"
    DISABLED = "disabled"
    IGNORED = "ignored"
    UNSUBSCRIBED = "unsubscribed"
    UNKNOWN = "unknown"
    UNVERIFIED = "unverified"


@dataclass(frozen=True)
class Report:
    """What a message says: a bounce, a complaint, or nothing we act on."""

    kind: BounceKind | None
    addresses: tuple[str, ...]
    delivery_key: str | None
    diagnostic: str
    code: int | None


@dataclass(frozen=True)
class Handled:
    report: Report
    verdict: Verdict
    contact_id: int | None


def verp_key(recipients: Sequence[str], signer: TokenSigner) -> str | None:
    """The delivery named by a VERP bounce address among ``recipients``, if genuine."""
    for recipient in recipients:
        match = _VERP.match(recipient.strip().strip("<>"))
        if match:
            try:
                return signer.read_verp(match.group(1))
            except BadToken:
                log.warning("ignored a bounce to a forged VERP address %s", recipient)
    return None


def _complaint(message: Message) -> tuple[tuple[str, ...], str, list[str]] | None:
    """An ARF report's complained-about addresses, feedback type, and the envelope senders
    of the original (where our VERP token is), if it is one."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "feedback-report":
        return None
    feedback = ""
    addresses: list[str] = []
    senders: list[str] = []
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            body = part.get_payload()
            text = "\n".join(str(p) for p in body) if isinstance(body, list) else str(body or "")
            for line in text.splitlines():
                name, _, value = line.partition(":")
                field = name.strip().lower()
                if field == "feedback-type":
                    feedback = value.strip()
                elif field in ("original-rcpt-to", "removal-recipient"):
                    addresses.append(value.strip().strip("<>").lower())
                elif field == "original-mail-from":
                    senders.append(value.strip())
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(original, Message) and original.get("Return-Path"):
                senders.append(str(original["Return-Path"]))
            if isinstance(original, Message) and original.get("To"):
                match = re.search(r"[\w.+'-]+@[\w.-]+", str(original["To"]))
                if match:
                    addresses.append(match.group(0).lower())
    return tuple(dict.fromkeys(addresses)), feedback or "abuse", senders


def _diagnostic(message: Message) -> tuple[str, int | None]:
    """The remote server's reply (unfolded) and its SMTP code, from the first recipient."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, Message) or not block.get("Final-Recipient"):
                continue
            raw = " ".join(str(block.get("Diagnostic-Code", "")).split())
            detail = raw.partition(";")[2].strip() if ";" in raw else raw
            code = re.match(r"([245]\d\d)\b", detail)
            if code:
                return detail[:1000], int(code.group(1))
            status = re.match(r"\s*([245])\.\d+\.\d+", str(block.get("Status", "")))
            return detail[:1000], int(status.group(1)) * 100 if status else None
    text = str(message.get_payload(decode=False))
    match = re.search(r"\b([45]\d\d)[ -]\d\.\d+\.\d+[^\n]*", text)
    return (match.group(0)[:1000], int(match.group(1))) if match else ("", None)


def read(raw: bytes, recipients: Sequence[str], signer: TokenSigner) -> Report:
    """What a report says (nothing for an auto-reply or anything else)."""
    try:
        return _read(raw, recipients, signer)
    except Exception as exc:  # a malformed message must not block the intake
        log.warning("could not read an incoming report (%s): ignored", exc)
        return Report(None, (), None, "", None)


def _read(raw: bytes, recipients: Sequence[str], signer: TokenSigner) -> Report:
    message = message_from_bytes(raw, policy=policy.compat32)
    key = verp_key(recipients, signer)
    complaint = _complaint(message)
    if complaint is not None:
        addresses, feedback, senders = complaint
        # Providers send complaints to fbl@; our token is in the original's envelope sender.
        key = key or verp_key(senders, signer)
        return Report(BounceKind.COMPLAINT, addresses, key, f"complaint: {feedback}", None)
    temporary, permanent = all_failures(message)
    diagnostic, code = _diagnostic(message)
    decoded = tuple(a.decode("utf-8", "replace").lower() for a in permanent)
    if permanent:
        return Report(BounceKind.PERMANENT, decoded, key, diagnostic, code)
    if temporary:
        addresses = tuple(a.decode("utf-8", "replace").lower() for a in temporary)
        return Report(BounceKind.TEMPORARY, addresses, key, diagnostic, code)
    return Report(None, (), key, "", None)


def _delivery(session: Session, report: Report) -> Delivery | None:
    """The delivery our (verified) VERP token names, if it is still held."""
    if report.delivery_key is None:
        return None
    try:
        return session.get(Delivery, int(report.delivery_key, 16))
    except ValueError:
        return None


def _named(session: Session, report: Report) -> Contact | None:
    """The contact whose address the report names (anyone can write that)."""
    for address in report.addresses:
        found = session.exec(select(Contact).where(col(Contact.email) == address)).first()
        if found is not None:
            return found
    return None


def _suppress(session: Session, contact: Contact, kind: BounceKind) -> None:
    reason = (
        SuppressionReason.COMPLAINT if kind is BounceKind.COMPLAINT else SuppressionReason.BOUNCE
    )
    if contact.status in (ContactStatus.ACTIVE, ContactStatus.DISABLED):
        contact.status = ContactStatus.SUPPRESSED
    ended = (
        SubscriptionStatus.COMPLAINED
        if kind is BounceKind.COMPLAINT
        else SubscriptionStatus.BOUNCED
    )
    session.execute(
        sa.update(Subscription)
        .where(
            col(Subscription.contact_id) == contact.id,
            col(Subscription.status) == SubscriptionStatus.ACTIVE,
        )
        .values(status=ended, updated_at=clock.now())
    )
    suppress(session, contact.email_hash, reason)


def record(
    session: Session,
    report: Report,
    raw: bytes,
    settings: BounceSettings,
    *,
    source: str,
) -> Handled:
    """Record a report as an event and apply the policy. Commits.

    Only a report carrying our VERP token (signed, naming one delivery) is acted on:
    anyone can write a report naming an address. Returns what was done: suppressed
    (permanent failure or complaint), scored, disabled (the score passed the threshold),
    ignored (not a bounce), unknown (no contact), or unverified (a contact is named but
    the report has no token of ours: recorded for staff to see, nothing changed).
    """
    if report.kind is None:
        return Handled(report, Verdict.IGNORED, None)
    now = clock.now()
    delivery = _delivery(session, report)
    contact = session.get(Contact, delivery.contact_id) if delivery else _named(session, report)
    address = contact.email if contact else (report.addresses[0] if report.addresses else "")
    delivery_id = delivery.id if delivery else None
    session.add(
        BounceEvent(
            contact_id=contact.id if contact else None,
            delivery_id=delivery_id,
            email_hash=email_hash(address) if address else "",
            kind=report.kind,
            source=source,
            code=report.code,
            diagnostic=report.diagnostic[:1000],
            raw=raw.decode("utf-8", "replace") if settings.keep_raw_days > 0 else None,
            created_at=now,
        )
    )
    if contact is None or contact.id is None:
        session.commit()
        log.info("%s report for an address we do not know: recorded only", report.kind)
        return Handled(report, Verdict.UNKNOWN, None)
    if delivery is None:
        session.commit()
        log.warning(
            "%s report naming contact %s without a bounce token of ours: recorded, no action",
            report.kind,
            contact.id,
        )
        return Handled(report, Verdict.UNVERIFIED, contact.id)
    verdict = apply(session, contact, report.kind, settings, detail=report.diagnostic)
    session.commit()
    log.info("contact %s: %s %s (code %s)", contact.id, report.kind, verdict, report.code)
    return Handled(report, verdict, contact.id)


def apply(
    session: Session,
    contact: Contact,
    kind: BounceKind,
    settings: BounceSettings | None,
    *,
    detail: str,
    actor: str = ACTOR,
) -> Verdict:
    """The one bounce policy, for a relay's reply at SMTP time and a DSN or complaint
    alike: a permanent failure or a complaint suppresses the address and ends every
    active subscription at once; a temporary failure adds to the contact's score (once a
    day) and disables it past the threshold. Audited; the caller commits.

    A temporary failure needs ``settings`` (the score); a permanent one does not.
    """
    now = clock.now()
    verdict = Verdict.SCORED
    if kind in (BounceKind.PERMANENT, BounceKind.COMPLAINT):
        _suppress(session, contact, kind)
        verdict = Verdict.SUPPRESSED
    else:
        assert settings is not None, "scoring a temporary failure needs [bounces] settings"
        today = now.date()
        stale = contact.last_bounce_at is None or now - contact.last_bounce_at > timedelta(
            days=settings.stale_days
        )
        if stale:
            contact.bounce_score = 0.0
        if contact.bounce_scored_on != today:
            contact.bounce_score += settings.temporary_score
            contact.bounce_scored_on = today
        if contact.bounce_score >= settings.threshold and contact.status is ContactStatus.ACTIVE:
            contact.status = ContactStatus.DISABLED
            verdict = Verdict.DISABLED
    contact.last_bounce_at = now
    contact.updated_at = now
    audit.record(
        session,
        actor,
        f"bounce:{verdict}",
        target=f"contact {contact.id}",
        detail=f"{kind}: {detail}"[:2000],
    )
    return verdict


def smtp_failure(
    session: Session, delivery_id: int, contact_id: int, code: int, reply: str
) -> Verdict | None:
    """A permanent (5xx) reply from the relay for one delivery: recorded as a bounce and
    handed to the same policy as a DSN (:func:`apply`). The caller commits."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    session.add(
        BounceEvent(
            contact_id=contact_id,
            delivery_id=delivery_id,
            email_hash=contact.email_hash,
            kind=BounceKind.PERMANENT,
            source="smtp",
            code=code,
            diagnostic=reply[:1000],
            created_at=clock.now(),
        )
    )
    verdict = apply(
        session, contact, BounceKind.PERMANENT, None, detail=f"{code} {reply}", actor="relay reply"
    )
    log.info("contact %s suppressed after a permanent failure (%s)", contact_id, code)
    return verdict


def handle(
    session: Session,
    raw: bytes,
    recipients: Sequence[str],
    signer: TokenSigner,
    settings: BounceSettings,
    *,
    source: str,
) -> Handled:
    """Read one incoming message and act on it. Commits."""
    return record(session, read(raw, recipients, signer), raw, settings, source=source)


def is_unsubscribe_address(address: str) -> bool:
    """Whether mail to ``address`` (an envelope address or a header's, with or without a
    display name) is a List-Unsubscribe request (``unsubscribe@…``)."""
    return any(
        found.rpartition("@")[0].lower() == UNSUBSCRIBE
        for _, found in getaddresses([address])
        if found
    )


def mailed_unsubscribe(session: Session, raw: bytes, signer: TokenSigner) -> Handled:
    """A message to the unsubscribe address: the reader its subject's token names is
    unsubscribed from that issue's publication, as by the one-click link (audited, harmless
    to repeat). A subject without a valid token (forged, altered, missing) changes nothing.
    Commits."""
    subject = str(BytesHeaderParser(policy=policy.default).parsebytes(raw).get("Subject", ""))
    found = _TOKEN.search(subject)
    report = Report(None, (), None, f"unsubscribe by email: {subject[:200]}", None)
    if found is None:
        log.info("ignored a message to the unsubscribe address without a token")
        return Handled(report, Verdict.IGNORED, None)
    try:
        who, publication = subscriptions.unsubscribe(
            session, signer, found.group(1), channel="email"
        )
    except subscriptions.LinkError as exc:
        log.warning("ignored an unsubscribe by email: %s", exc)
        return Handled(report, Verdict.IGNORED, None)
    log.info("contact %s unsubscribed from the %s by email", who.contact.id, publication)
    return Handled(report, Verdict.UNSUBSCRIBED, who.contact.id)


class NotDisabled(ValueError):
    """Only a contact disabled by bounces can be re-enabled."""


def reenable(session: Session, contact_id: int, *, actor: str) -> Contact:
    """Make a contact the bounce score disabled active again, its score back to 0. Commits.

    :raises NotDisabled: the contact does not exist or is not disabled.
    """
    contact = session.get(Contact, contact_id)
    if contact is None or contact.status is not ContactStatus.DISABLED:
        state = contact.status if contact else "unknown"
        raise NotDisabled(f"contact {contact_id} is {state}: only a disabled contact is re-enabled")
    contacts.set_status(session, contact_id, ContactStatus.ACTIVE, actor=actor)
    session.commit()
    return contact


def forget_raw(session: Session, settings: BounceSettings) -> int:
    """Drop raw reports older than ``keep_raw_days`` (the event stays). Commits."""
    cutoff = clock.now() - timedelta(days=settings.keep_raw_days)
    result = session.execute(
        sa.update(BounceEvent)
        .where(col(BounceEvent.raw).is_not(None), col(BounceEvent.created_at) < cutoff)
        .values(raw=None)
    )
    session.commit()
    return rowcount(result)


def listing(
    session: Session, *, contact_id: int | None = None, limit: int = 50
) -> list[BounceEvent]:
    """Bounce and complaint events, newest first."""
    query = select(BounceEvent).order_by(col(BounceEvent.id).desc()).limit(limit)
    if contact_id is not None:
        query = query.where(col(BounceEvent.contact_id) == contact_id)
    return list(session.exec(query))


@dataclass(frozen=True)
class Disabled:
    """A contact the bounce score has just disabled: what staff are told."""

    contact_id: int
    email: str
    name: str
    organisation: str
    score: float
    diagnostic: str


class Intake:
    """Acts on incoming reports, each in a session of its own; tells staff of contacts the
    score disables (through ``tell``, whose failure is logged and does not lose the report).
    """

    def __init__(
        self,
        engine: Engine,
        signer: TokenSigner,
        settings: BounceSettings,
        *,
        source: str,
        tell: Callable[[Disabled], None] | None = None,
    ) -> None:
        self.engine = engine
        self.signer = signer
        self.settings = settings
        self.source = source
        self.tell = tell

    def __call__(self, raw: bytes, recipients: list[str]) -> Handled:
        if any(is_unsubscribe_address(r) for r in recipients):
            with Session(self.engine) as session:
                return mailed_unsubscribe(session, raw, self.signer)
        with Session(self.engine) as session:
            handled = handle(
                session, raw, recipients, self.signer, self.settings, source=self.source
            )
            disabled = None
            if handled.verdict is Verdict.DISABLED and handled.contact_id is not None:
                contact = session.get(Contact, handled.contact_id)
                assert contact is not None
                organisation = session.get(Organisation, contact.organisation_id)
                disabled = Disabled(
                    handled.contact_id,
                    contact.email,
                    contact.name,
                    organisation.name if organisation else "",
                    contact.bounce_score,
                    handled.report.diagnostic,
                )
        if disabled is not None and self.tell is not None:
            try:
                self.tell(disabled)
            except Exception:
                log.exception(
                    "could not tell staff that contact %s is disabled", disabled.contact_id
                )
        return handled


class _Intake:
    """aiosmtpd handler: accepts mail for the bounce and unsubscribe addresses of our
    domain, then acts on it."""

    def __init__(self, domain: str, process: Callable[[bytes, list[str]], Handled]) -> None:
        self.domain = domain.lower()
        self.process = process

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        local, _, domain = address.lower().rpartition("@")
        ours = local in ("bounces", "abuse", "fbl", UNSUBSCRIBE) or local.startswith("bounces+")
        if domain != self.domain or not ours:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            await asyncio.to_thread(self.process, raw, list(envelope.rcpt_tos))
        except Exception:
            log.exception("could not record an incoming report")
            return "451 4.3.0 Could not record the report; try again later"
        return "250 2.0.0 Report recorded"


def endpoint(
    host: str, port: int, domain: str, process: Callable[[bytes, list[str]], Handled]
) -> Controller:
    """The SMTP bounce endpoint (not yet started)."""
    # aiosmtpd logs every connection and its AUTH mechanisms at INFO: keep only problems.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    return Controller(
        _Intake(domain, process), hostname=host, port=port, data_size_limit=MAX_REPORT_BYTES
    )


def _envelope_recipients(raw: bytes) -> list[str]:
    """Where a message in a mailbox was delivered to: our VERP address, for a bounce."""
    message = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    return [
        str(value)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
        for value in message.get_all(name, [])
    ]


def fetch(
    settings: BounceSettings,
    password: str | None,
    process: Callable[[bytes, list[str]], Handled],
) -> int:
    """Read every message in the bounce mailbox, act on it, and delete it once recorded.

    Returns the number of messages processed.

    :raises OSError, imaplib.IMAP4.error: the mailbox cannot be reached or read.
    """
    if settings.imap_tls:
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            settings.imap_host, settings.imap_port, ssl_context=ssl.create_default_context()
        )
    else:
        client = imaplib.IMAP4(settings.imap_host, settings.imap_port)
    done = 0
    try:
        client.login(settings.imap_username, password or "")
        client.select(settings.imap_folder)
        try:
            _, found = client.search(None, "UNDELETED")
            for number in found[0].split():
                _, parts = client.fetch(number, "(RFC822)")
                raw = next((p[1] for p in parts if isinstance(p, tuple)), b"")
                try:
                    process(raw, _envelope_recipients(raw))
                except Exception:  # the database, say: leave it for the next fetch
                    log.exception("could not record message %s of the bounce mailbox", number)
                    continue
                client.store(number, "+FLAGS", "\\Deleted")
                done += 1
        finally:
            client.expunge()
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    return done
