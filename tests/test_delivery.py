"""Sending through a real SMTP server that misbehaves: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import delivery, outbox
from mailer.models import (
    CapturedMessage,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    IssueStatus,
)
from mailer.settings import Config
from mailer.tokens import TokenSigner
from mailer.transports import CaptureTransport, SmtpTransport
from tests.outbox_fixtures import approved, config_for, people, start
from tests.smtp_server import RecordingHandler, free_port, running

SIGNER = TokenSigner(b"delivery-key-" * 3)


def _send(engine: Engine, config: Config, transport: object, **kwargs: object) -> delivery.Tally:
    sender = delivery.Sender(engine, config, transport, signer=SIGNER)  # type: ignore[arg-type]
    return asyncio.run(sender.run(**kwargs))  # type: ignore[arg-type]


def _smtp(port: int, **options: object) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", port, timeout=10, **options)  # type: ignore[arg-type]


def _by_status(session: Session) -> dict[str, DeliveryStatus]:
    session.expire_all()
    rows = session.exec(
        select(Delivery).join(Contact, col(Contact.id) == col(Delivery.contact_id))
    ).all()
    emails = {c.id: c.email for c in session.exec(select(Contact))}
    return {emails[row.contact_id]: row.status for row in rows}


def test_faults_are_sorted_and_nothing_is_lost(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    # Twelve readers; the server refuses or fails some of them in every way it can.
    people(session, 12)
    issue = approved(session)
    start(session, issue)
    faults = RecordingHandler(
        rcpt_faults={"reader1@lep1.example": 550, "reader2@lep2.example": 452},
        data_faults={
            "reader3@lep3.example": 554,
            "reader4@lep4.example": 451,
            "reader5@lep5.example": 421,
        },
        drop_during_data={"reader6@lep6.example"},
    )
    config = config_for(str(engine.url.render_as_string(hide_password=False)), tmp_path)
    with running(faults) as (controller, handler):
        tally = _send(engine, config, _smtp(controller.port, connections=3), issue_id=issue.id)
    statuses = _by_status(session)
    assert statuses["reader1@lep1.example"] is DeliveryStatus.FAILED
    assert statuses["reader3@lep3.example"] is DeliveryStatus.FAILED
    for deferred in (
        "reader2@lep2.example",
        "reader4@lep4.example",
        "reader5@lep5.example",
        "reader6@lep6.example",
    ):
        assert statuses[deferred] is DeliveryStatus.DEFERRED, deferred
    delivered = {r for m in handler.messages for r in m.recipients}
    sent = {email for email, status in statuses.items() if status is DeliveryStatus.SENT}
    assert delivered == sent
    assert len(sent) == 6
    assert len(handler.messages) == 6  # each exactly once
    assert (tally.sent, tally.failed, tally.deferred) == (6, 2, 4)
    # 5xx: failed and suppressed at once.
    suppressed = session.exec(
        select(Contact.email).where(col(Contact.status) == ContactStatus.SUPPRESSED)
    ).all()
    assert sorted(suppressed) == ["reader1@lep1.example", "reader3@lep3.example"]
    # The issue keeps sending until the deferred ones are done.
    session.refresh(issue)
    assert issue.status is IssueStatus.SENDING


def test_each_message_has_its_verp_sender_and_stable_message_id(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 3)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    with running() as (controller, handler):
        _send(engine, config, _smtp(controller.port), issue_id=issue.id)
    deliveries = {d.id: d for d in session.exec(select(Delivery))}
    for received in handler.messages:
        local = received.sender.split("@")[0]
        assert local.startswith("bounces+")
        delivery_id = int(SIGNER.read_verp(local.removeprefix("bounces+")), 16)
        contact = session.get(Contact, deliveries[delivery_id].contact_id)
        assert contact is not None and received.recipients == [contact.email]
        message = BytesParser(policy=policy.default).parsebytes(received.data)
        assert message["Message-ID"] == f"<bulletin-2027-05.{contact.id:x}@lepnetwork.example>"
        assert message.defects == []
    session.refresh(issue)
    assert issue.status is IssueStatus.SENT


def test_the_pool_reuses_connections_and_renews_them(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 20)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    with running() as (controller, handler):
        _send(
            engine,
            config,
            _smtp(controller.port, connections=2, messages_per_connection=5),
            issue_id=issue.id,
        )
    assert len(handler.messages) == 20
    # 20 messages, 5 per connection: at least 4 sessions, far fewer than 20.
    assert 4 <= handler.sessions <= 6


def test_per_domain_concurrency_is_capped(engine: Engine, session: Session, tmp_path: Path) -> None:
    people(session, 16, domain="bigcouncil.example")
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    with running(RecordingHandler(delay=0.05)) as (controller, handler):
        _send(
            engine, config, _smtp(controller.port, connections=8, per_domain=2), issue_id=issue.id
        )
    assert len(handler.messages) == 16
    assert handler.most_in_flight["bigcouncil.example"] == 2


def test_the_rate_limit_holds(engine: Engine, session: Session, tmp_path: Path) -> None:
    people(session, 12)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    with running() as (controller, handler):
        began = time.monotonic()
        _send(engine, config, _smtp(controller.port, connections=4, rate=10.0), issue_id=issue.id)
        took = time.monotonic() - began
    assert len(handler.messages) == 12
    assert took >= 1.0  # 12 messages at 10 per second, evenly spaced: 1.1 s at least


def test_an_unreachable_relay_is_logged_once_and_sending_resumes(
    engine: Engine, session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    people(session, 6)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    port = free_port()
    sender = delivery.Sender(engine, config, _smtp(port, connections=2), signer=SIGNER)
    handler = RecordingHandler()
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=port)

    def relay_comes_back() -> None:
        time.sleep(2.5)
        controller.start()

    caplog.set_level(logging.WARNING)
    opener = threading.Thread(target=relay_comes_back)
    opener.start()
    try:
        tally = asyncio.run(sender.run(issue_id=issue.id))
    finally:
        opener.join()
        controller.stop()
    assert len(handler.messages) == 6
    assert tally.sent == 6
    down = [r for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(down) == 1
    assert any("again" in r.getMessage() for r in caplog.records)
    assert all(s is DeliveryStatus.SENT for s in _by_status(session).values())


def test_stopping_releases_claims_and_a_later_run_finishes_exactly_once(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 30)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    with running(RecordingHandler(delay=0.05)) as (controller, handler):
        sender = delivery.Sender(
            engine, config, _smtp(controller.port, connections=2), signer=SIGNER
        )

        async def stop_soon() -> delivery.Tally:
            asyncio.get_running_loop().call_later(0.4, sender.stop)
            return await sender.run(issue_id=issue.id)

        first = asyncio.run(stop_soon())
        statuses = Counter(_by_status(session).values())
        assert 0 < first.sent < 30
        assert statuses[DeliveryStatus.CLAIMED] == 0
        assert statuses[DeliveryStatus.SENT] == first.sent
        assert statuses[DeliveryStatus.QUEUED] == 30 - first.sent
        second = _send(engine, config, _smtp(controller.port, connections=2), issue_id=issue.id)
    assert first.sent + second.sent == 30
    received = Counter(r for m in handler.messages for r in m.recipients)
    assert len(received) == 30
    assert set(received.values()) == {1}
    assert outbox.report(session, issue.id or 0).in_doubt == 0


def test_the_capture_transport_keeps_every_message(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 5)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    tally = _send(engine, config, CaptureTransport(tmp_path / "mail", engine), issue_id=issue.id)
    assert tally.sent == 5
    captured = session.exec(select(CapturedMessage)).all()
    assert len(captured) == 5
    assert len(list((tmp_path / "mail").rglob("*.eml"))) == 5
    assert all(c.envelope_from.startswith("bounces+") for c in captured)


def test_on_sqlite_a_second_sender_is_told_clearly(engine: Engine, tmp_path: Path) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL runs several senders; the lock is for SQLite")
    with (
        delivery.single_sender(engine, tmp_path),
        pytest.raises(delivery.SenderBusy, match="one sender runs at a time"),
        delivery.single_sender(engine, tmp_path),
    ):
        pass
