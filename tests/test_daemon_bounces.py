"""The daemon takes bounces in (its SMTP endpoint or the IMAP mailbox) and keeps retention."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, settings
from mailer.daemon import Daemon
from mailer.models import (
    BounceEvent,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryCount,
    IssueStatus,
)
from mailer.transports import SmtpTransport
from tests import imap_server
from tests.outbox_fixtures import addressed, approved, config_for, people, start, verp_for, wire
from tests.smtp_server import free_port, running

CORPUS = Path(__file__).parent / "data" / "bounces"


def _config(engine: Engine, tmp_path: Path, **bounces: object) -> settings.Config:
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    changed = config.settings.model_copy(
        update={"bounces": config.settings.bounces.model_copy(update=bounces)}
    )
    return dataclasses.replace(config, settings=changed)


async def _running(daemon: Daemon, until: object) -> None:
    """Run the daemon while ``until`` (a coroutine function) does its part."""
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop, poll=0.1))
    try:
        for _ in range(200):
            if daemon.leading:
                break
            await asyncio.sleep(0.05)
        assert daemon.leading
        await until()  # type: ignore[operator]
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def test_the_daemon_runs_the_bounce_endpoint_and_tells_staff_of_a_disabled_contact(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    [kept, flaky] = people(session, 2, domain="semlep.example")
    port = free_port()
    config = _config(engine, tmp_path, receive="smtp", port=port, threshold=0.5)
    with running() as (relay, handler):
        daemon = Daemon(
            config, engine, transport=lambda: SmtpTransport("127.0.0.1", relay.port, timeout=10)
        )

        assert flaky.id is not None
        verp = verp_for(session, flaky.id, daemon.signer)

        async def report() -> None:
            assert daemon.bounce_endpoint is not None
            raw = addressed(wire((CORPUS / "postfix-delayed.eml").read_bytes()), verp)
            raw = raw.replace(b"bo.full@semlep.example", flaky.email.encode())

            def deliver() -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail("", [verp], raw)

            await asyncio.to_thread(deliver)

        asyncio.run(_running(daemon, report))
        notices = [
            BytesParser(policy=policy.default).parsebytes(m.data)
            for m in handler.messages
            if m.recipients == ["comms@lepnetwork.example"]
        ]
    assert daemon.bounce_endpoint is None  # stopped with the daemon
    session.expire_all()
    assert session.get(Contact, flaky.id).status is ContactStatus.DISABLED  # type: ignore[union-attr]
    assert session.get(Contact, kept.id).status is ContactStatus.ACTIVE  # type: ignore[union-attr]
    [notice] = notices
    assert str(notice["Subject"]) == "Disabled after repeated bounces: Reader 1"
    body = notice.get_content()
    assert flaky.email in body and "452 4.2.2 Mailbox full" in body
    assert f"/staff/contacts/{flaky.id}" in body


@pytest.mark.skipif(imap_server.unavailable() is not None, reason=str(imap_server.unavailable()))
def test_the_daemon_fetches_the_bounce_mailbox(
    engine: Engine, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [gone] = people(session, 1, domain="d2n2.example")
    assert gone.id is not None
    with imap_server.dovecot() as mailbox:
        config = _config(
            engine,
            tmp_path,
            receive="imap",
            imap_host=mailbox.host,
            imap_port=mailbox.port,
            imap_tls=False,
            imap_username=mailbox.username,
        )
        secrets = dataclasses.replace(config.secrets, imap_password=mailbox.password)
        config = dataclasses.replace(config, secrets=secrets)
        daemon = Daemon(config, engine, transport=lambda: None)  # type: ignore[arg-type,return-value]
        client = mailbox.client()
        raw = addressed(
            (CORPUS / "postfix-permanent.eml").read_bytes(),
            verp_for(session, gone.id, daemon.signer),
        )
        client.append("INBOX", "", None, raw.replace(b"ann.gone@d2n2.example", gone.email.encode()))
        client.logout()

        async def nothing() -> None:
            return None

        asyncio.run(_running(daemon, nothing))  # the first fetch comes as the daemon leads
        client = mailbox.client()
        client.select("INBOX")
        assert client.search(None, "ALL")[1] == [b""]
        client.logout()
    session.expire_all()
    assert session.get(Contact, gone.id).status is ContactStatus.SUPPRESSED  # type: ignore[union-attr]
    [event] = session.exec(select(BounceEvent)).all()
    assert event.source == "imap"
    # Once the mailbox is unreachable, a fetch is logged and tried again later.
    asyncio.run(daemon.fetch_bounces())


def test_the_daemon_applies_retention_once_a_day(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 3)
    with clock.frozen(datetime(2027, 2, 25, tzinfo=UTC)):  # written the week before
        issue = approved(session)
    start(session, issue)
    config = _config(engine, tmp_path)
    with running() as (relay, _):
        daemon = Daemon(
            config, engine, transport=lambda: SmtpTransport("127.0.0.1", relay.port, timeout=10)
        )
        with clock.frozen(datetime(2027, 3, 4, 9, 30, tzinfo=UTC)) as frozen:

            async def send_then_tick() -> None:
                await daemon.drain_outbox()
                await daemon.settle()
                await daemon.tick()

            asyncio.run(send_then_tick())
            session.refresh(issue)
            assert issue.status is IssueStatus.SENT
            assert len(session.exec(select(Delivery)).all()) == 3
            frozen.advance(timedelta(days=config.settings.privacy.retention_days + 1))
            asyncio.run(daemon.tick())
    session.expire_all()
    assert session.exec(select(Delivery)).all() == []
    [counted] = session.exec(
        select(DeliveryCount).where(col(DeliveryCount.issue_id) == issue.id)
    ).all()
    assert counted.count == 3
