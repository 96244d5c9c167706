"""Data protection: subject access export, erasure that leaves nothing personal, retention."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from mailer import audiences, audit, bounces, clock, delivery, outbox, privacy, publications
from mailer.contacts import email_hash
from mailer.importer import import_contacts
from mailer.models import (
    BounceEvent,
    CapturedMessage,
    Contact,
    Delivery,
    DeliveryCount,
    DeliveryStatus,
    Issue,
    LawfulBasis,
    Publication,
    Signup,
    Suppression,
    SuppressionReason,
)
from mailer.settings import BounceSettings, SignupSettings
from mailer.subscriptions import request_signup
from mailer.tokens import TokenSigner
from mailer.transports import CaptureTransport
from tests.conftest import LISTS
from tests.helpers import write_csv
from tests.outbox_fixtures import addressed, approved, config_for, people, start, verp_for
from tests.rendering_fixtures import ZONE

SIGNER = TokenSigner(b"privacy-test-key" * 2)
CORPUS = Path(__file__).parent / "data" / "bounces"
SUBJECT = "reader1@lep1.example"
NAME = "Reader 1"


def _send(engine: Engine, session: Session, tmp_path: Path) -> Issue:
    """Send an approved bulletin to everyone through the capture transport."""
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    sender = delivery.Sender(
        engine, config, CaptureTransport(tmp_path / "mail", engine), signer=SIGNER
    )
    asyncio.run(sender.run(issue_id=issue.id))
    session.expire_all()
    return issue


def _everything_held(engine: Engine, session: Session, tmp_path: Path) -> Issue:
    """Three readers; the subject also signed up on the web, bounced once, was edited."""
    people(session, 3)
    issue = _send(engine, session, tmp_path)
    request_signup(
        session,
        name=NAME,
        email=SUBJECT,
        organisation="Lep1 Ltd",
        ip="192.0.2.7",
        settings=SignupSettings(),
    )
    contact = session.exec(select(Contact).where(col(Contact.email) == SUBJECT)).one()
    assert contact.id is not None
    verp = verp_for(session, contact.id, SIGNER)
    raw = addressed((CORPUS / "postfix-delayed.eml").read_bytes(), verp)
    raw = raw.replace(b"bo.full@semlep.example", SUBJECT.encode())
    handled = bounces.handle(session, raw, [verp], SIGNER, BounceSettings(), source="smtp")
    assert handled.verdict is bounces.Verdict.SCORED
    audit.record(session, "editor@lepnetwork.example", "contact:edit", f"contact {contact.id}")
    session.commit()
    # Staff were told about the address (a notice kept by the capture), and about another.
    capture = CaptureTransport(tmp_path / "mail", engine)
    for about in (SUBJECT, "reader2@lep2.example"):
        notice = EmailMessage()
        notice["Subject"] = "Disabled after repeated bounces"
        # Quoted-printable, with a soft line break inside the address.
        notice.set_content(
            f"Siân Glyndŵr{'x' * 50} <{about.upper()}> gets no more mail.", cte="quoted-printable"
        )
        data = notice.as_bytes()
        assert about.upper().encode() not in data  # split by the encoding
        asyncio.run(capture.send("info@lepnetwork.example", ["comms@x.example"], data))
    return issue


def test_export_returns_everything_held_about_the_address(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    _everything_held(engine, session, tmp_path)
    data = privacy.export_subject(session, " Reader1@LEP1.example ")
    json.dumps(data)  # plain data, ready to hand over
    assert data["email"] == SUBJECT
    assert data["profile"]["name"] == NAME
    assert data["profile"]["organisation"].startswith("Derby, Derbyshire, Nottingham")
    assert data["profile"]["role"] == "officer"
    assert data["lawful_basis"]["basis"] == LawfulBasis.LEGITIMATE_INTEREST.value
    assert {s["publication"] for s in data["subscriptions"]} == {"bulletin", "newsletter"}
    [sent] = data["deliveries"]
    assert sent["status"] == "sent" and sent["issue"] == "bulletin 2027/05"
    assert sent["subject"].startswith("LEP Network Bulletin")
    [bounce] = data["bounces"]
    assert bounce["kind"] == "temporary" and bounce["code"] == 452
    assert SUBJECT in bounce["report"]  # the raw report, while it is kept
    assert data["complaints"] == []
    [signup] = data["signups"]
    assert signup["name"] == NAME and signup["organisation"] == "Lep1 Ltd"
    assert data["suppressed"] is None
    assert data["bounce_score"] == 0.5 and data["last_bounce_at"]
    # What was done to the record, and by whom; and the copy the capture kept.
    assert [(h["by"], h["action"]) for h in data["history"]] == [
        ("editor@lepnetwork.example", "contact:edit"),
        (bounces.ACTOR, "bounce:scored"),
    ]
    [copy] = data["captured_copies"]
    assert copy["subject"].startswith("LEP Network Bulletin") and Path(copy["file"]).exists()
    with pytest.raises(privacy.SubjectNotFound, match="nothing is held about nobody@"):
        privacy.export_subject(session, "nobody@nowhere.example")


def _dump(engine: Engine) -> str:
    """Every row of every table, as text."""
    parts = []
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            parts.append(repr(connection.execute(sa.select(table)).all()))
    return "\n".join(parts).lower()


def test_erase_leaves_nothing_personal_and_the_address_stays_suppressed(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    issue = _everything_held(engine, session, tmp_path)
    assert issue.id is not None
    before = outbox.report(session, issue.id).counts
    assert before == {DeliveryStatus.SENT: 3}
    assert SUBJECT in _dump(engine)
    files = {c.recipients: Path(c.path) for c in session.exec(select(CapturedMessage))}
    notices = [  # in the order they were sent: the one naming the reader first
        Path(c.path)
        for c in session.exec(select(CapturedMessage).order_by(col(CapturedMessage.id)))
        if "comms@" in c.recipients
    ]
    removed = privacy.erase_subject(session, SUBJECT, actor="admin@lepnetwork.example")
    assert removed == {
        "contacts": 1,
        "deliveries": 1,
        "subscriptions": 2,
        "bounce_events": 1,
        "signups": 1,
        "captured_messages": 2,
    }
    session.expire_all()
    # Nothing personal anywhere: not the address, its local part, or the name.
    everything = _dump(engine)
    for personal in (SUBJECT, "reader1@", NAME.lower(), "lep1 ltd"):
        assert personal not in everything, personal
    assert not files[SUBJECT].exists()
    assert files["reader0@lep0.example"].exists()
    assert [p.exists() for p in notices] == [False, True]
    # Only the hash is kept, in the suppression list.
    [suppression] = session.exec(select(Suppression)).all()
    assert suppression.email_hash == email_hash(SUBJECT)
    assert suppression.reason is SuppressionReason.ERASURE
    # The send report keeps its totals: the erased delivery is an anonymous count.
    assert outbox.report(session, issue.id).counts == before
    [counted] = session.exec(select(DeliveryCount)).all()
    assert (counted.issue_id, counted.status, counted.count) == (issue.id, DeliveryStatus.SENT, 1)
    # The erasure itself is in the audit log, naming no one.
    [entry] = audit.listing(session, action="subject:erase")
    assert entry.actor == "admin@lepnetwork.example" and "@" not in entry.target
    # A later import of the address is refused, and a sign-up stores nothing.
    csv_file = write_csv(
        tmp_path / "again.csv",
        f"email,name,organisation,role\n{SUBJECT},{NAME},D2N2,officer\n",
    )
    report = import_contacts(session, csv_file, zone=ZONE)
    assert report.added == 0
    [problem] = report.rejected
    assert problem.line == 2 and "suppressed" in problem.reason
    result = request_signup(
        session,
        name=NAME,
        email=SUBJECT,
        organisation="",
        ip="192.0.2.8",
        settings=SignupSettings(),
    )
    assert result.signup is None
    assert session.exec(select(Signup)).all() == []
    rule = publications.load(LISTS, Publication.BULLETIN).audience
    recipients = {m.email for m in audiences.resolve(session, Publication.BULLETIN, rule)}
    assert recipients == {"reader0@lep0.example", "reader2@lep2.example"}
    # Nothing is held any more; erasing again says so without failing.
    with pytest.raises(privacy.SubjectNotFound):
        privacy.export_subject(session, "nobody@nowhere.example")
    assert privacy.erase_subject(session, SUBJECT, actor="admin@lepnetwork.example") == {}
    with pytest.raises(privacy.SubjectNotFound, match="nothing is held"):
        privacy.erase_subject(session, "nobody@nowhere.example", actor="admin@lepnetwork.example")


def test_erasing_an_address_known_only_from_a_sign_up_or_a_bounce(session: Session) -> None:
    request_signup(
        session,
        name="Pat Public",
        email="pat@public.example",
        organisation="",
        ip="192.0.2.9",
        settings=SignupSettings(),
    )
    raw = (CORPUS / "postfix-permanent.eml").read_bytes()
    bounces.handle(
        session, raw, ["bounces@lepnetwork.example"], SIGNER, BounceSettings(), source="smtp"
    )
    assert privacy.erase_subject(session, "pat@public.example", actor="x") == {"signups": 1}
    assert privacy.erase_subject(session, "ann.gone@d2n2.example", actor="x") == {
        "bounce_events": 1
    }
    assert (
        session.exec(select(Signup)).all() == [] and session.exec(select(BounceEvent)).all() == []
    )


def test_retention_reduces_old_deliveries_to_counts_and_keeps_the_totals(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 4)
    with clock.frozen(datetime(2027, 3, 4, 9, tzinfo=UTC)) as frozen:
        issue = _send(engine, session, tmp_path)
        assert issue.id is not None
        before = outbox.report(session, issue.id).counts
        assert privacy.retain(session, 730) == 0  # too recent
        frozen.advance(timedelta(days=731))
        assert privacy.retain(session, 730, batch=3) == 4  # in two batches
        assert privacy.retain(session, 730) == 0  # nothing left to reduce
    session.expire_all()
    assert session.exec(select(Delivery)).all() == []
    assert outbox.report(session, issue.id).counts == before == {DeliveryStatus.SENT: 4}
    assert privacy.export_subject(session, "reader0@lep0.example")["deliveries"] == []
    [entry] = audit.listing(session, action="retention")
    assert entry.actor == audit.SYSTEM and "4 deliveries" in entry.detail
