"""Bounces and complaints: the corpus, the policy, the SMTP endpoint and the IMAP mailbox."""

from __future__ import annotations

import asyncio
import imaplib
import re
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import audiences, bounces, clock, delivery, organisations, publications, subscriptions
from mailer.contacts import email_hash
from mailer.models import (
    AuditEntry,
    BounceEvent,
    BounceKind,
    Contact,
    ContactStatus,
    Delivery,
    LawfulBasis,
    Publication,
    Role,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from mailer.organisations import Directory
from mailer.settings import BounceSettings
from mailer.tokens import TokenSigner
from mailer.transports import SmtpTransport
from tests import imap_server
from tests.conftest import LISTS
from tests.outbox_fixtures import addressed, approved, config_for, people, start, verp_for, wire
from tests.smtp_server import free_port, running

CORPUS = Path(__file__).parent / "data" / "bounces"
SIGNER = TokenSigner(b"bounce-test-key-" * 2)
SETTINGS = BounceSettings()
DOMAIN = "lepnetwork.example"


def _contact(session: Session, email: str, org: str = "D2N2") -> Contact:
    """An active LEP contact subscribed to both publications."""
    if Directory.load(session).find(org) is None:
        organisations.load_lists(session, LISTS)
    found = Directory.load(session).find(org)
    assert found is not None and found.id is not None
    contact = Contact(
        email=email,
        email_hash=email_hash(email),
        name=email.split("@")[0].replace(".", " ").title(),
        organisation_id=found.id,
        role=Role.OFFICER,
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
    )
    session.add(contact)
    session.flush()
    assert contact.id is not None
    for publication in Publication:
        session.add(Subscription(contact_id=contact.id, publication=publication))
    session.commit()
    return contact


def _subscriptions(session: Session, contact_id: int) -> set[SubscriptionStatus]:
    found = session.exec(select(Subscription).where(col(Subscription.contact_id) == contact_id))
    return {s.status for s in found}


def _suppressed(session: Session, email: str) -> SuppressionReason | None:
    found = session.exec(
        select(Suppression).where(col(Suppression.email_hash) == email_hash(email))
    ).first()
    return found.reason if found else None


# -- the corpus ------------------------------------------------------------------------

# file, the address it reports, what it is, what the policy does, the code it carries
TABLE = [
    ("postfix-permanent.eml", "ann.gone@d2n2.example", BounceKind.PERMANENT, "suppressed", 550),
    ("postfix-delayed.eml", "bo.full@semlep.example", BounceKind.TEMPORARY, "scored", 452),
    ("exim-permanent.eml", "cy.moved@gbslep.example", BounceKind.PERMANENT, "suppressed", 550),
    (
        "exchange-permanent.eml",
        "di.left@newanglia.example",
        BounceKind.PERMANENT,
        "suppressed",
        550,
    ),
    ("gmail-permanent.eml", "ed.nobody@gmail.example", BounceKind.PERMANENT, "suppressed", 550),
    ("yahoo-complaint.eml", "fi.annoyed@yahoo.example", BounceKind.COMPLAINT, "suppressed", None),
    ("autoreply.eml", "gus.away@solent.example", None, "ignored", None),
]


@pytest.mark.parametrize(("name", "address", "kind", "verdict", "code"), TABLE)
def test_every_report_in_the_corpus_is_read_and_acted_on(
    session: Session,
    name: str,
    address: str,
    kind: BounceKind | None,
    verdict: str,
    code: int | None,
) -> None:
    contact = _contact(session, address)
    bystander = _contact(session, "someone.else@d2n2.example")
    assert contact.id is not None and bystander.id is not None
    verp = verp_for(session, contact.id, SIGNER)
    raw = addressed((CORPUS / name).read_bytes(), verp)
    # A bounce comes back to the copy's VERP address; a complaint to fbl@, quoting it.
    to = [f"fbl@{DOMAIN}"] if kind is BounceKind.COMPLAINT else [verp]
    handled = bounces.handle(session, raw, to, SIGNER, SETTINGS, source="smtp")
    assert handled.report.kind is kind
    assert handled.verdict == verdict
    assert handled.report.code == code
    session.expire_all()
    events = session.exec(select(BounceEvent)).all()
    if kind is None:
        assert events == []  # an auto-reply is not recorded, and changes nothing
        assert session.get(Contact, contact.id).status is ContactStatus.ACTIVE  # type: ignore[union-attr]
        assert _subscriptions(session, contact.id) == {SubscriptionStatus.ACTIVE}
        return
    assert address in handled.report.addresses
    assert handled.contact_id == contact.id
    [event] = events
    assert (event.contact_id, event.kind, event.code) == (contact.id, kind, code)
    assert event.raw == raw.decode()  # the raw report is kept (for keep_raw_days)
    stored = session.get(Contact, contact.id)
    assert stored is not None
    if kind is BounceKind.TEMPORARY:
        assert stored.status is ContactStatus.ACTIVE
        assert stored.bounce_score == SETTINGS.temporary_score
        assert _suppressed(session, address) is None
        assert _subscriptions(session, contact.id) == {SubscriptionStatus.ACTIVE}
    else:
        assert stored.status is ContactStatus.SUPPRESSED
        ended = (
            SubscriptionStatus.COMPLAINED
            if kind is BounceKind.COMPLAINT
            else SubscriptionStatus.BOUNCED
        )
        assert _subscriptions(session, contact.id) == {ended}
        reason = (
            SuppressionReason.COMPLAINT
            if kind is BounceKind.COMPLAINT
            else SuppressionReason.BOUNCE
        )
        assert _suppressed(session, address) is reason
        rule = publications.load(LISTS, Publication.BULLETIN).audience
        recipients = {m.email for m in audiences.resolve(session, Publication.BULLETIN, rule)}
        assert address not in recipients
    # Nobody else is touched, and the bounce processor's decision is in the audit log.
    assert session.get(Contact, bystander.id).status is ContactStatus.ACTIVE  # type: ignore[union-attr]
    entry = session.exec(
        select(AuditEntry).where(col(AuditEntry.action).startswith("bounce:"))
    ).one()
    assert entry.actor == bounces.ACTOR and entry.target == f"contact {contact.id}"
    assert entry.action == f"bounce:{verdict}"


@pytest.mark.parametrize(
    ("name", "address", "kind"), [(n, a, k) for n, a, k, *_ in TABLE if k is not None]
)
def test_a_report_without_our_token_changes_nothing_however_real_it_looks(
    session: Session, name: str, address: str, kind: BounceKind
) -> None:
    """Anyone can write a report naming an address: only our signed VERP token counts."""
    contact = _contact(session, address)
    assert contact.id is not None
    raw = (CORPUS / name).read_bytes()  # to bounces@, or quoting a token we did not sign
    to = [f"fbl@{DOMAIN}"] if kind is BounceKind.COMPLAINT else [f"bounces@{DOMAIN}"]
    handled = bounces.handle(session, raw, to, SIGNER, SETTINGS, source="smtp")
    assert (handled.verdict, handled.contact_id) == (bounces.Verdict.UNVERIFIED, contact.id)
    session.expire_all()
    stored = session.get(Contact, contact.id)
    assert stored is not None
    assert (stored.status, stored.bounce_score) == (ContactStatus.ACTIVE, 0.0)
    assert _subscriptions(session, contact.id) == {SubscriptionStatus.ACTIVE}
    assert _suppressed(session, address) is None
    # Staff can see it on the contact's page all the same.
    [event] = session.exec(select(BounceEvent)).all()
    assert (event.contact_id, event.kind, event.delivery_id) == (contact.id, kind, None)


def test_a_report_for_an_address_we_do_not_hold_is_recorded_only(session: Session) -> None:
    raw = (CORPUS / "postfix-permanent.eml").read_bytes()
    handled = bounces.handle(session, raw, [f"bounces@{DOMAIN}"], SIGNER, SETTINGS, source="smtp")
    assert handled.verdict is bounces.Verdict.UNKNOWN
    [event] = session.exec(select(BounceEvent)).all()
    assert event.contact_id is None and event.email_hash == email_hash("ann.gone@d2n2.example")
    assert session.exec(select(Suppression)).all() == []


# -- the score ---------------------------------------------------------------------------


def _delayed(session: Session, contact: Contact) -> tuple[bytes, list[str]]:
    """A delay report for a copy sent to ``contact``, and the VERP address it came to."""
    assert contact.id is not None
    verp = verp_for(session, contact.id, SIGNER)
    return addressed((CORPUS / "postfix-delayed.eml").read_bytes(), verp), [verp]


def _temporary(
    session: Session, contact: Contact, settings: BounceSettings = SETTINGS
) -> bounces.Handled:
    raw, to = _delayed(session, contact)
    return bounces.handle(session, raw, to, SIGNER, settings, source="imap")


def test_temporary_failures_score_once_a_day_and_past_the_threshold_disable(
    session: Session,
) -> None:
    contact = _contact(session, "bo.full@semlep.example")
    with clock.frozen(datetime(2027, 3, 1, 9, tzinfo=UTC)) as frozen:
        # Three reports on one day count once.
        for _ in range(3):
            assert _temporary(session, contact).verdict is bounces.Verdict.SCORED
        session.refresh(contact)
        assert contact.bounce_score == 0.5
        # One a day for nine more days: 5.0 on the tenth, and the contact is disabled.
        verdicts = []
        for _ in range(9):
            frozen.advance(timedelta(days=1))
            verdicts.append(_temporary(session, contact).verdict)
        assert verdicts[:-1] == [bounces.Verdict.SCORED] * 8
        assert verdicts[-1] is bounces.Verdict.DISABLED
    session.refresh(contact)
    assert (contact.status, contact.bounce_score) == (ContactStatus.DISABLED, 5.0)
    # Disabled is not suppressed: re-enabled, the contact gets mail again from a clean score.
    assert _suppressed(session, contact.email) is None
    rule = publications.load(LISTS, Publication.BULLETIN).audience
    assert audiences.count(session, Publication.BULLETIN, rule) == 0
    assert contact.id is not None
    bounces.reenable(session, contact.id, actor="approver@lepnetwork.example")
    session.refresh(contact)
    assert (contact.status, contact.bounce_score) == (ContactStatus.ACTIVE, 0.0)
    assert audiences.count(session, Publication.BULLETIN, rule) == 1
    with pytest.raises(bounces.NotDisabled, match="only a disabled contact"):
        bounces.reenable(session, contact.id, actor="approver@lepnetwork.example")


def test_a_score_expires_after_a_quiet_period(session: Session) -> None:
    contact = _contact(session, "bo.full@semlep.example")
    with clock.frozen(datetime(2027, 3, 1, 9, tzinfo=UTC)) as frozen:
        for _ in range(4):
            _temporary(session, contact)
            frozen.advance(timedelta(days=1))
        session.refresh(contact)
        assert contact.bounce_score == 2.0
        frozen.advance(timedelta(days=SETTINGS.stale_days + 1))
        _temporary(session, contact)
    session.refresh(contact)
    assert contact.bounce_score == 0.5  # started again from nothing


def test_the_threshold_and_the_score_are_configurable(session: Session) -> None:
    contact = _contact(session, "bo.full@semlep.example")
    strict = SETTINGS.model_copy(update={"temporary_score": 1.0, "threshold": 2.0})
    with clock.frozen(datetime(2027, 3, 1, 9, tzinfo=UTC)) as frozen:
        assert _temporary(session, contact, strict).verdict is bounces.Verdict.SCORED
        frozen.advance(timedelta(days=1))
        assert _temporary(session, contact, strict).verdict is bounces.Verdict.DISABLED
    session.refresh(contact)
    assert contact.status is ContactStatus.DISABLED


def test_staff_are_told_when_the_score_disables_a_contact(engine: Engine, session: Session) -> None:
    contact = _contact(session, "bo.full@semlep.example")
    told: list[bounces.Disabled] = []
    strict = SETTINGS.model_copy(update={"threshold": 0.5})
    intake = bounces.Intake(engine, SIGNER, strict, source="smtp", tell=told.append)
    handled = intake(*_delayed(session, contact))
    assert handled.verdict is bounces.Verdict.DISABLED
    [notice] = told
    assert (notice.contact_id, notice.email) == (contact.id, "bo.full@semlep.example")
    assert notice.organisation and "452 4.2.2 Mailbox full" in notice.diagnostic

    def broken(_: bounces.Disabled) -> None:
        raise OSError("relay down")

    # A notice that cannot be sent loses nothing: the report is recorded all the same.
    other = _contact(session, "ann.gone@d2n2.example")
    failing = bounces.Intake(engine, SIGNER, strict, source="smtp", tell=broken)
    raw, to = _delayed(session, other)
    assert failing(raw, to).verdict is bounces.Verdict.DISABLED
    session.refresh(other)
    assert other.status is ContactStatus.DISABLED


def test_raw_reports_are_forgotten_after_their_keeping_time(session: Session) -> None:
    contact = _contact(session, "ann.gone@d2n2.example")
    assert contact.id is not None
    verp = verp_for(session, contact.id, SIGNER)
    with clock.frozen(datetime(2027, 3, 1, 9, tzinfo=UTC)) as frozen:
        raw = addressed((CORPUS / "postfix-permanent.eml").read_bytes(), verp)
        bounces.handle(session, raw, [verp], SIGNER, SETTINGS, source="smtp")
        assert bounces.forget_raw(session, SETTINGS) == 0
        frozen.advance(timedelta(days=SETTINGS.keep_raw_days + 1))
        assert bounces.forget_raw(session, SETTINGS) == 1
    [event] = session.exec(select(BounceEvent)).all()
    session.refresh(event)
    assert event.raw is None and event.kind is BounceKind.PERMANENT and event.code == 550


# -- the SMTP endpoint, with a real delivery's VERP address --------------------------------


def _dsn_to(verp: str, final_recipient: str) -> bytes:
    """The Postfix bounce, as the remote end would send it to our VERP return path."""
    raw = wire((CORPUS / "postfix-permanent.eml").read_bytes())
    return raw.replace(b"ann.gone@d2n2.example", final_recipient.encode()).replace(
        f"bounces@{DOMAIN}".encode(), verp.encode()
    )


@pytest.fixture
def endpoint(engine: Engine) -> Iterator[tuple[int, list[bounces.Disabled]]]:
    told: list[bounces.Disabled] = []
    intake = bounces.Intake(engine, SIGNER, SETTINGS, source="smtp", tell=told.append)
    port = free_port()
    controller = bounces.endpoint("127.0.0.1", port, DOMAIN, intake)
    controller.start()
    try:
        yield port, told
    finally:
        controller.stop()


def _send_issue(engine: Engine, session: Session, tmp_path: Path, count: int) -> list[Message]:
    """Send an approved bulletin to ``count`` readers through a real SMTP server."""
    people(session, count)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    with running() as (controller, handler):
        transport = SmtpTransport("127.0.0.1", controller.port, timeout=10)
        sender = delivery.Sender(engine, config, transport, signer=SIGNER)
        asyncio.run(sender.run(issue_id=issue.id))
    assert len(handler.messages) == count
    return [
        message_from_bytes(
            f"Return-Path: <{m.sender}>\r\nDelivered-To: {m.recipients[0]}\r\n".encode() + m.data
        )
        for m in handler.messages
    ]


def test_a_dsn_sent_to_the_running_endpoint_suppresses_the_contact_its_verp_names(
    engine: Engine, session: Session, tmp_path: Path, endpoint: tuple[int, list[bounces.Disabled]]
) -> None:
    port, _ = endpoint
    sent = _send_issue(engine, session, tmp_path, 3)
    victim = sent[1]
    verp = str(victim["Return-Path"]).strip("<>")
    assert verp.startswith("bounces+") and verp.endswith(f"@{DOMAIN}")
    address = str(victim["Delivered-To"])
    # The report names a forwarding address we never held: only our VERP token says who.
    dsn = _dsn_to(verp, "forwarded.copy@elsewhere.example")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        refused = client.sendmail("", [verp], dsn)
    assert refused == {}
    session.expire_all()
    contact = session.exec(select(Contact).where(col(Contact.email) == address)).one()
    assert contact.id is not None
    assert contact.status is ContactStatus.SUPPRESSED
    assert _subscriptions(session, contact.id) == {SubscriptionStatus.BOUNCED}
    assert _suppressed(session, address) is SuppressionReason.BOUNCE
    [event] = session.exec(select(BounceEvent)).all()
    delivered = session.get(Delivery, event.delivery_id)
    assert delivered is not None and delivered.contact_id == contact.id
    assert (event.source, event.code) == ("smtp", 550)
    # The other two readers are untouched.
    others = session.exec(select(Contact).where(col(Contact.email) != address)).all()
    assert {c.status for c in others} == {ContactStatus.ACTIVE}


def test_a_complaint_sent_to_the_running_endpoint_suppresses_the_reader(
    engine: Engine, session: Session, tmp_path: Path, endpoint: tuple[int, list[bounces.Disabled]]
) -> None:
    port, _ = endpoint
    sent = _send_issue(engine, session, tmp_path, 2)
    address = str(sent[0]["Delivered-To"])
    verp = str(sent[0]["Return-Path"]).strip("<>")
    # The provider quotes our copy, with its Return-Path: our VERP token names the reader.
    raw = addressed(wire((CORPUS / "yahoo-complaint.eml").read_bytes()), verp)
    complaint = raw.replace(b"fi.annoyed@yahoo.example", address.encode())
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("feedback@arf.mail.yahoo.example", [f"fbl@{DOMAIN}"], complaint)
    session.expire_all()
    contact = session.exec(select(Contact).where(col(Contact.email) == address)).one()
    assert contact.status is ContactStatus.SUPPRESSED
    assert contact.id is not None
    assert _subscriptions(session, contact.id) == {SubscriptionStatus.COMPLAINED}
    assert _suppressed(session, address) is SuppressionReason.COMPLAINT
    [event] = session.exec(select(BounceEvent)).all()
    assert event.kind is BounceKind.COMPLAINT and event.contact_id == contact.id


def test_the_endpoint_refuses_other_mailboxes_and_ignores_forged_verp_tokens(
    engine: Engine, session: Session, tmp_path: Path, endpoint: tuple[int, list[bounces.Disabled]]
) -> None:
    port, _ = endpoint
    sent = _send_issue(engine, session, tmp_path, 1)
    verp = str(sent[0]["Return-Path"]).strip("<>")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("", ["postmaster@elsewhere.example"], b"Subject: hi\r\n\r\nhi\r\n")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("", [f"info@{DOMAIN}"], b"Subject: hi\r\n\r\nhi\r\n")
        # A token with one character changed names nobody: the report names an address we
        # do not hold, so it is recorded only.
        local, _, domain = verp.partition("@")
        forged = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"
        client.sendmail("", [forged], _dsn_to(forged, "forwarded.copy@elsewhere.example"))
    session.expire_all()
    assert {c.status for c in session.exec(select(Contact))} == {ContactStatus.ACTIVE}
    [event] = session.exec(select(BounceEvent)).all()
    assert event.contact_id is None and event.delivery_id is None


def _unsubscribe_mail(message: Message) -> tuple[str, bytes]:
    """What a mail client sends for the mailto in a message's List-Unsubscribe."""
    [mailto] = re.findall(r"<mailto:([^>]+)>", str(message["List-Unsubscribe"]))
    address, _, query = mailto.partition("?")
    subject = parse_qs(query)["subject"][0]
    return address, f"To: {address}\r\nSubject: {subject}\r\n\r\nunsubscribe\r\n".encode()


def test_the_mailto_unsubscribe_of_a_real_message_unsubscribes_its_reader(
    engine: Engine, session: Session, tmp_path: Path, endpoint: tuple[int, list[bounces.Disabled]]
) -> None:
    port, _ = endpoint
    sent = _send_issue(engine, session, tmp_path, 3)
    rule = publications.load(LISTS, Publication.BULLETIN).audience
    before = audiences.count(session, Publication.BULLETIN, rule)
    leaving = str(sent[0]["Delivered-To"])
    address, request = _unsubscribe_mail(sent[0])
    assert address == f"unsubscribe@{DOMAIN}"
    # A forged token (one character of the signature changed) and no token change nothing.
    _, other = _unsubscribe_mail(sent[1])
    forged = other.replace(b"\r\n\r\n", b"x\r\n\r\n", 1)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        assert client.sendmail(leaving, [address], forged) == {}
        plain = b"Subject: unsubscribe me\r\n\r\nplease\r\n"
        assert client.sendmail(leaving, [address], plain) == {}
        # The real request, twice (a client retrying): one unsubscribe, one audit entry.
        assert client.sendmail(leaving, [address], request) == {}
        assert client.sendmail(leaving, [address], request) == {}
    session.expire_all()
    statuses = {
        c.email: {
            s.publication: s.status
            for s in session.exec(select(Subscription).where(col(Subscription.contact_id) == c.id))
        }
        for c in session.exec(select(Contact))
    }
    assert statuses[leaving] == {
        Publication.BULLETIN: SubscriptionStatus.UNSUBSCRIBED,
        Publication.NEWSLETTER: SubscriptionStatus.ACTIVE,
    }
    assert all(
        set(s.values()) == {SubscriptionStatus.ACTIVE} for e, s in statuses.items() if e != leaving
    )
    [entry] = session.exec(select(AuditEntry).where(col(AuditEntry.action) == "unsubscribe")).all()
    assert (entry.actor, entry.detail) == (subscriptions.READER, "bulletin (by email)")
    assert session.exec(select(BounceEvent)).all() == []  # not a bounce
    # The next send leaves them out.
    assert audiences.count(session, Publication.BULLETIN, rule) == before - 1
    emails = {r.email for r in audiences.resolve(session, Publication.BULLETIN, rule)}
    assert leaving not in emails and len(emails) == before - 1


# -- the IMAP mailbox (a real Dovecot) ---------------------------------------------------


@pytest.mark.skipif(imap_server.unavailable() is not None, reason=str(imap_server.unavailable()))
def test_fetch_reads_the_bounce_mailbox_records_every_report_and_empties_it(
    engine: Engine, session: Session
) -> None:
    reports = []
    for name, address, *_rest in TABLE:
        contact = _contact(session, address)
        assert contact.id is not None
        # The mailbox's server delivered it to our VERP address: its To: header.
        reports.append(
            addressed((CORPUS / name).read_bytes(), verp_for(session, contact.id, SIGNER))
        )
    # The List-Unsubscribe mailto lands in the same mailbox (a token naming no issue is
    # the newsletter's, as for the one-click link).
    away = session.exec(select(Contact).where(col(Contact.email) == TABLE[-1][1])).one()
    assert away.id is not None
    token = SIGNER.recipient(away.id, 0)
    reports.append(f"To: unsubscribe@{DOMAIN}\r\nSubject: unsubscribe {token}\r\n\r\n\r\n".encode())
    with imap_server.dovecot() as mailbox:
        client = mailbox.client()
        when = imaplib.Time2Internaldate(datetime(2027, 3, 1, 9, tzinfo=UTC))
        # One message no parser can make sense of does not hold the others up.
        client.append("INBOX", "", when, b"\r\n\r\n")
        for raw in reports:
            client.append("INBOX", "", when, raw)
        client.logout()
        settings = SETTINGS.model_copy(
            update={
                "imap_host": mailbox.host,
                "imap_port": mailbox.port,
                "imap_tls": False,
                "imap_username": mailbox.username,
            }
        )
        intake = bounces.Intake(engine, SIGNER, settings, source="imap")
        assert bounces.fetch(settings, mailbox.password, intake) == len(TABLE) + 2
        client = mailbox.client()
        client.select("INBOX")
        _, left = client.search(None, "ALL")
        client.logout()
        assert left == [b""]  # every message recorded, then deleted
        with pytest.raises(imaplib.IMAP4.error):
            bounces.fetch(settings, "wrong-password", intake)
    session.expire_all()
    statuses = {c.email: c.status for c in session.exec(select(Contact))}
    for _, address, kind, _verdict, _code in TABLE:
        expected = (
            ContactStatus.SUPPRESSED
            if kind in (BounceKind.PERMANENT, BounceKind.COMPLAINT)
            else ContactStatus.ACTIVE
        )
        assert statuses[address] is expected, address
    unsubscribed = {
        s.publication: s.status
        for s in session.exec(select(Subscription).where(col(Subscription.contact_id) == away.id))
    }
    assert unsubscribed == {
        Publication.BULLETIN: SubscriptionStatus.ACTIVE,
        Publication.NEWSLETTER: SubscriptionStatus.UNSUBSCRIBED,
    }
    sources = {e.source for e in session.exec(select(BounceEvent))}
    assert sources == {"imap"} and len(session.exec(select(BounceEvent)).all()) == len(TABLE) - 1
