"""Sending through a real SMTP server that misbehaves: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import delivery, outbox, transports
from mailer.models import (
    AuditEntry,
    BounceEvent,
    BounceKind,
    CapturedMessage,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    IssueStatus,
    Publication,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from mailer.settings import Config
from mailer.tokens import TokenSigner
from mailer.transports import CaptureTransport, Reply, SmtpTransport, Withheld
from tests.outbox_fixtures import approved, config_for, people, start
from tests.rendering_fixtures import ZONE
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


def test_a_relay_refusing_our_sender_suppresses_nobody(
    engine: Engine, session: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A relay answering 530 to MAIL FROM (say, authentication required) is our problem,
    # not the readers': nobody is suppressed, nothing is lost.
    people(session, 10)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    caplog.set_level(logging.WARNING)
    with running(RecordingHandler(mail_fault=530)) as (controller, handler):
        sender = delivery.Sender(
            engine, config, _smtp(controller.port, connections=2), signer=SIGNER
        )

        async def briefly() -> delivery.Tally:
            asyncio.get_running_loop().call_later(2.0, sender.stop)
            return await sender.run(issue_id=issue.id)

        tally = asyncio.run(briefly())
    assert handler.messages == []
    assert (tally.sent, tally.failed) == (0, 0)
    assert (
        session.exec(select(Contact).where(col(Contact.status) != ContactStatus.ACTIVE)).all() == []
    )
    assert set(_by_status(session).values()) == {DeliveryStatus.QUEUED}
    refusals = [r for r in caplog.records if "refuses our sender address" in r.getMessage()]
    assert len(refusals) == 1


def test_a_failed_record_is_retried_and_nothing_is_sent_twice(
    engine: Engine, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database refuses the first write of results (a lock, a failover): the results are
    # kept and written on the next try; no delivery is released and sent again.
    people(session, 8)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    real = outbox.record
    failures = iter([True])

    def flaky(*args: object, **kwargs: object) -> int:
        if next(failures, False):
            raise sa.exc.OperationalError("UPDATE deliveries", {}, Exception("database is locked"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "record", flaky)
    with running() as (controller, handler):
        tally = _send(engine, config, _smtp(controller.port), issue_id=issue.id)
    received = Counter(r for m in handler.messages for r in m.recipients)
    assert len(received) == 8
    assert set(received.values()) == {1}
    assert tally.sent == 8
    assert set(_by_status(session).values()) == {DeliveryStatus.SENT}


def test_an_unexpected_error_defers_that_message_and_the_send_goes_on(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 6)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)

    class Faulty:
        concurrency = 2
        calls = 0

        async def send(
            self,
            sender: str,
            recipients: Sequence[str],
            message: bytes,
            guard: Callable[[], bool] = lambda: True,
        ) -> Reply:
            Faulty.calls += 1
            raise RuntimeError("a bug in a transport")

        async def close(self) -> None:
            return None

    tally = asyncio.run(
        asyncio.wait_for(
            delivery.Sender(engine, config, Faulty(), signer=SIGNER).run(issue_id=issue.id),
            20,
        )
    )
    assert tally.deferred == 6
    assert set(_by_status(session).values()) == {DeliveryStatus.DEFERRED}
    assert (
        session.exec(select(Contact).where(col(Contact.status) != ContactStatus.ACTIVE)).all() == []
    )


def test_a_connection_closed_while_idle_is_replaced_without_losing_the_message(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 2)
    issue = approved(session)
    handler = RecordingHandler()
    from tests.smtp_server import _Controller
    from tests.smtp_server import free_port as port_for

    controller = _Controller(handler, hostname="127.0.0.1", port=port_for(), timeout=1)
    controller.start()
    try:
        transport = _smtp(controller.port, connections=1)

        async def two_apart() -> list[int]:
            codes = []
            for number in range(2):
                reply = await transport.send(
                    "bounces@lepnetwork.example",
                    [f"r{number}@lep1.example"],
                    b"Subject: x\r\n\r\nhello\r\n",
                )
                codes.append(reply.code)
                await asyncio.sleep(2)  # the server drops the idle connection after 1 s
            await transport.close()
            return codes

        codes = asyncio.run(two_apart())
    finally:
        controller.stop()
    assert codes == [250, 250]
    assert len(handler.messages) == 2
    assert issue.id is not None


def test_an_address_that_needs_smtputf8_is_refused_at_import(
    session: Session, tmp_path: Path
) -> None:
    from mailer.importer import import_contacts
    from tests.helpers import write_csv

    people(session, 0)
    report = import_contacts(
        session,
        write_csv(
            tmp_path / "c.csv", "email,name,organisation,role\njosé@d2n2.example,José,D2N2,chair\n"
        ),
        zone=ZONE,
    )
    assert report.added == 0
    assert "Internationalized characters before the @-sign" in report.rejected[0].reason


def test_two_slow_senders_never_take_each_others_live_claims(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    # Short claim timeout, slow sending: the heartbeat keeps live claims from being taken.
    if engine.dialect.name != "postgresql":
        pytest.skip("several senders share an outbox on PostgreSQL")
    people(session, 24)
    issue = approved(session)
    start(session, issue)
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    slow = config.settings.delivery.model_copy(
        update={"claim_timeout_seconds": 10, "batch_size": 6}
    )
    config = type(config)(
        **{**config.__dict__, "settings": config.settings.model_copy(update={"delivery": slow})}
    )
    with running() as (controller, handler):

        async def both() -> None:
            senders = [
                delivery.Sender(
                    engine, config, _smtp(controller.port, connections=1, rate=1.5), signer=SIGNER
                )
                for _ in range(2)
            ]
            await asyncio.gather(*(s.run(issue_id=issue.id) for s in senders))

        asyncio.run(both())
    received = Counter(r for m in handler.messages for r in m.recipients)
    assert len(received) == 24
    assert set(received.values()) == {1}
    assert outbox.report(session, issue.id or 0).in_doubt == 0


def test_a_5xx_at_smtp_time_is_the_same_bounce_as_a_dsn(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    # One bounce policy: the relay refusing a recipient (550) does what a permanent DSN
    # does: the address is suppressed and every active subscription ends as bounced,
    # the bulletin's and the newsletter's alike, with the decision in the audit log.
    people(session, 3)
    issue = approved(session)
    start(session, issue)
    config = config_for(str(engine.url.render_as_string(hide_password=False)), tmp_path)
    with running(RecordingHandler(rcpt_faults={"reader1@lep1.example": 550})) as (controller, _):
        _send(engine, config, _smtp(controller.port), issue_id=issue.id)
    session.expire_all()
    gone = session.exec(select(Contact).where(col(Contact.email) == "reader1@lep1.example")).one()
    assert gone.status is ContactStatus.SUPPRESSED
    statuses = {
        s.publication: s.status
        for s in session.exec(select(Subscription).where(col(Subscription.contact_id) == gone.id))
    }
    assert statuses == {p: SubscriptionStatus.BOUNCED for p in Publication}
    assert (
        session.exec(select(Suppression).where(col(Suppression.email_hash) == gone.email_hash))
        .one()
        .reason
        is SuppressionReason.BOUNCE
    )
    entry = session.exec(
        select(AuditEntry).where(col(AuditEntry.target) == f"contact {gone.id}")
    ).one()
    assert (entry.actor, entry.action) == ("relay reply", "bounce:suppressed")
    event = session.exec(select(BounceEvent).where(col(BounceEvent.contact_id) == gone.id)).one()
    assert (event.source, event.code, event.kind) == ("smtp", 550, BounceKind.PERMANENT)


@pytest.mark.parametrize("allowed", [0, 1, 2], ids=["mail", "data", "after-354"])
def test_a_guard_that_says_no_at_any_step_hands_nothing_over(allowed: int) -> None:
    # The transport asks before MAIL FROM, before DATA and after DATA's 354 (a sender whose
    # lease lapsed meanwhile must not send): whichever answer is no, the relay keeps
    # nothing, and the next message still goes.
    message = b"Subject: guarded\r\n\r\nhello\r\n"
    with running() as (controller, handler):
        transport = _smtp(controller.port, connections=1)
        answers = iter([True] * allowed + [False])

        async def go() -> int:
            with pytest.raises(Withheld):
                await transport.send(
                    "b@lepnetwork.example", ["r@lep1.example"], message, lambda: next(answers)
                )
            reply = await transport.send("b@lepnetwork.example", ["s@lep1.example"], message)
            await transport.close()
            return reply.code

        assert asyncio.run(go()) == 250
    assert [m.recipients for m in handler.messages] == [["s@lep1.example"]]


@pytest.mark.parametrize("address", ["a@b.example\r\nRCPT TO:<x@y>", "a b@c.example", "<a@b>"])
def test_an_address_that_could_break_the_command_line_is_never_written(address: str) -> None:
    # MAIL FROM and RCPT TO are written as the commands themselves: an address holding a
    # line break or a bracket (a bug of ours: every address is normalised) is refused.
    with pytest.raises(ValueError, match="not a plain address"):
        transports._path(address)
    assert transports._path("bounces+x1@lepnetwork.example") == b"<bounces+x1@lepnetwork.example>"
