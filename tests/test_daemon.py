"""The daemon with a frozen, advanced clock: sends at the slot once, misses drafts, reminds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import calendar, clock, contributions, editorial
from mailer.daemon import Daemon
from mailer.models import Issue, IssueStatus, Organisation, Publication, Slot, SlotStatus
from mailer.settings import Settings
from mailer.transports import CaptureTransport, SmtpTransport
from tests.conftest import LISTS
from tests.outbox_fixtures import approved, config_for, drafted, people
from tests.rendering_fixtures import definition, renderer
from tests.smtp_server import RecordingHandler, running

SLOT = datetime(2027, 3, 4, 9, 30, tzinfo=UTC)  # bulletin 2027/05, the test issue's slot


def _daemon(engine: Engine, tmp_path: Path, transport: object) -> Daemon:
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    return Daemon(config, engine, transport=lambda: transport)  # type: ignore[return-value,arg-type]


async def _tick(daemon: Daemon) -> None:
    """One look at the calendar, and the send it started (if any) seen through."""
    await daemon.tick()
    await daemon.settle()


def _written(make: Callable[[Session], Issue], session: Session) -> Issue:
    """The test issue, written the week before its slot (when its year is planned)."""
    with clock.frozen(datetime(2027, 2, 25, tzinfo=UTC)):
        return make(session)


def _slot(session: Session, number: str = "2027/05") -> Slot:
    session.expire_all()
    return session.exec(select(Slot).where(col(Slot.number) == number)).one()


def _alerts(handler: RecordingHandler) -> list[str]:
    return [
        str(BytesParser(policy=policy.default).parsebytes(m.data)["Subject"])
        for m in handler.messages
        if m.recipients == ["comms@lepnetwork.example"]
    ]


def test_an_approved_issue_is_sent_at_its_slot_once(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 4)
    issue = _written(approved, session)
    transport = CaptureTransport(tmp_path / "mail", engine)
    daemon = _daemon(engine, tmp_path, transport)
    with clock.frozen(datetime(2027, 3, 4, 9, 0, tzinfo=UTC)) as frozen:
        asyncio.run(_tick(daemon))  # plans the year; nothing is due yet
        assert _slot(session).status is SlotStatus.PLANNED
        frozen.set(SLOT)
        asyncio.run(_tick(daemon))
        frozen.advance(timedelta(minutes=1))
        asyncio.run(_tick(daemon))
    session.refresh(issue)
    assert issue.status is IssueStatus.SENT
    assert _slot(session).status is SlotStatus.DISPATCHED
    assert len(list((tmp_path / "mail").rglob("*.eml"))) == 4
    # Slots that were already past when the calendar was planned are not missed.
    assert _slot(session, "2027/01").status is SlotStatus.SKIPPED


def test_a_draft_at_its_slot_is_never_sent_and_staff_are_alerted(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 4)
    issue = _written(drafted, session)  # a draft
    session.commit()
    with running() as (controller, handler):
        daemon = _daemon(engine, tmp_path, SmtpTransport("127.0.0.1", controller.port))
        with clock.frozen(datetime(2027, 3, 1, tzinfo=UTC)) as frozen:
            asyncio.run(_tick(daemon))
            frozen.set(SLOT)
            asyncio.run(_tick(daemon))
            asyncio.run(_tick(daemon))
    session.refresh(issue)
    assert issue.status is IssueStatus.DRAFT
    assert _slot(session).status is SlotStatus.MISSED
    subjects = _alerts(handler)
    assert subjects.count("MISSED: Bulletin 2027/05 was not sent") == 1
    assert all(m.recipients == ["comms@lepnetwork.example"] for m in handler.messages)


def test_reminders_come_at_the_deadline_and_on_the_morning(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 1)
    _written(drafted, session)
    session.commit()
    with running() as (controller, handler):
        daemon = _daemon(engine, tmp_path, SmtpTransport("127.0.0.1", controller.port))
        with clock.frozen(datetime(2027, 3, 1, tzinfo=UTC)) as frozen:
            asyncio.run(_tick(daemon))
            assert _alerts(handler) == []
            frozen.set(datetime(2027, 3, 2, 17, 1, tzinfo=UTC))  # deadline: Tue 17:00
            asyncio.run(_tick(daemon))
            asyncio.run(_tick(daemon))
            frozen.set(datetime(2027, 3, 4, 8, 5, tzinfo=UTC))  # the morning of the slot
            asyncio.run(_tick(daemon))
            asyncio.run(_tick(daemon))
    assert _alerts(handler) == [
        "Deadline passed: Bulletin 2027/05",
        "Today: Bulletin 2027/05 is not approved",
    ]


@pytest.mark.parametrize(
    ("restart", "sent"),
    [
        (datetime(2027, 3, 4, 15, 0, tzinfo=UTC), True),
        (datetime(2027, 3, 4, 16, 0, tzinfo=UTC), False),
    ],
)
def test_after_downtime_it_sends_within_grace_and_misses_after(
    engine: Engine, session: Session, tmp_path: Path, restart: datetime, sent: bool
) -> None:
    # The daemon planned the slot, then was down until ``restart`` (grace: 6 hours).
    people(session, 3)
    issue = _written(approved, session)
    with running() as (controller, handler):
        daemon = _daemon(engine, tmp_path, SmtpTransport("127.0.0.1", controller.port))
        with clock.frozen(datetime(2027, 3, 3, tzinfo=UTC)) as frozen:
            asyncio.run(_tick(daemon))
            frozen.set(restart)
            asyncio.run(_tick(daemon))
    session.refresh(issue)
    readers = [m for m in handler.messages if m.recipients != ["comms@lepnetwork.example"]]
    if sent:
        assert issue.status is IssueStatus.SENT
        assert len(readers) == 3
        assert _alerts(handler) == []
    else:
        assert issue.status is IssueStatus.MISSED
        assert readers == []
        assert _alerts(handler) == ["MISSED: Bulletin 2027/05 was not sent"]
        assert _slot(session).status is SlotStatus.MISSED


def test_a_slot_decided_once_is_not_decided_again(engine: Engine, session: Session) -> None:
    people(session, 1)
    issue = _written(approved, session)
    with clock.frozen(datetime(2027, 3, 1, tzinfo=UTC)):
        calendar.ensure_year(session, 2027, Settings())
        session.commit()
    slot = _slot(session)
    assert slot.id is not None
    first = calendar.dispatch(session, slot.id, SLOT, timedelta(hours=6), LISTS)
    second = calendar.dispatch(session, slot.id, SLOT, timedelta(hours=6), LISTS)
    assert (first.decision, second.decision) == (calendar.Decision.SENT, calendar.Decision.NOTHING)
    session.refresh(issue)
    assert issue.status is IssueStatus.SENDING


def test_a_reminder_the_relay_refuses_is_sent_again_on_the_next_tick(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 1)
    _written(drafted, session)
    session.commit()
    handler = RecordingHandler(rcpt_faults={"comms@lepnetwork.example": 451})
    with running(handler) as (controller, _):
        daemon = _daemon(engine, tmp_path, SmtpTransport("127.0.0.1", controller.port))
        with clock.frozen(datetime(2027, 3, 1, tzinfo=UTC)) as frozen:
            asyncio.run(_tick(daemon))
            frozen.set(datetime(2027, 3, 2, 17, 1, tzinfo=UTC))
            asyncio.run(_tick(daemon))
            assert _alerts(handler) == []
            assert _slot(session).deadline_reminded_at is None  # not marked: it failed
            handler.rcpt_faults.clear()
            asyncio.run(_tick(daemon))
    assert _alerts(handler) == ["Deadline passed: Bulletin 2027/05"]


def test_stopping_the_daemon_stops_a_send_under_way(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 60)
    issue = _written(approved, session)
    with running(RecordingHandler(delay=0.05)) as (controller, handler):
        daemon = _daemon(
            engine, tmp_path, SmtpTransport("127.0.0.1", controller.port, connections=1)
        )

        async def run_then_stop() -> float:
            stop = asyncio.Event()
            running_daemon = asyncio.create_task(daemon.run(stop))
            while not handler.messages:
                await asyncio.sleep(0.05)
            asked = asyncio.get_running_loop().time()
            stop.set()
            await running_daemon
            return asyncio.get_running_loop().time() - asked

        with clock.frozen(SLOT + timedelta(seconds=30)):
            with Session(engine) as other:
                calendar.ensure_year(other, 2027, Settings())
                other.commit()
            took = asyncio.run(run_then_stop())
    assert took < 5
    assert 0 < len(handler.messages) < 60
    session.refresh(issue)
    assert issue.status is IssueStatus.SENDING  # the rest waits, queued, for the next run


def test_the_daemon_tells_contributors_retrying_what_the_relay_refused(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    # A LEP reader's contribution, accepted into the test bulletin before its slot: the
    # daemon sends the receipt (again, once the relay takes it) and, once the bulletin
    # has gone at its slot, the one credit email.
    reader = people(session, 1)[0]
    issue = _written(drafted, session)
    organisation = session.get(Organisation, reader.organisation_id)
    assert organisation is not None and issue.id is not None
    with clock.frozen(datetime(2027, 2, 26, tzinfo=UTC)):
        checked = contributions.check(
            contributions.Fields(kind="lep_news", headline="D2N2 news", text="It happened."),
            Settings().contributions,
            has_image=False,
            today=date(2027, 2, 26),
        )
        row = contributions.submit(
            session,
            contributions.Contributor(reader, organisation, None),
            checked,
            image=None,
            settings=Settings(),
            media_folder=tmp_path,
        )
        session.commit()
        contributions.accept(
            session, row.id or 0, by="editor@lepnetwork.example", settings=Settings(),
            slot_id=_slot(session).id,
        )  # fmt: skip
        session.commit()
        editorial.approve(
            session, issue.id, approver="approver@lepnetwork.example", renderer=renderer(),
            definition=definition(Publication.BULLETIN), settings=Settings(),
        )  # fmt: skip
        session.commit()
    handler = RecordingHandler(rcpt_faults={reader.email: 451})

    def to_reader() -> list[str]:
        return [
            str(BytesParser(policy=policy.default).parsebytes(m.data)["Subject"])
            for m in handler.messages
            if m.recipients == [reader.email]
        ]

    with running(handler) as (controller, _):
        daemon = _daemon(engine, tmp_path, SmtpTransport("127.0.0.1", controller.port))
        with clock.frozen(datetime(2027, 3, 1, tzinfo=UTC)) as frozen:
            asyncio.run(_tick(daemon))
            assert to_reader() == []  # refused: released, not lost
            handler.rcpt_faults.clear()
            asyncio.run(_tick(daemon))
            assert to_reader() == ["Received for the bulletin: D2N2 news"]
            frozen.set(SLOT + timedelta(minutes=1))
            asyncio.run(_tick(daemon))
            asyncio.run(_tick(daemon))
            asyncio.run(_tick(daemon))
    subjects = to_reader()
    assert subjects.count("Your item is in today's bulletin: D2N2 news") == 1, subjects
    assert subjects.count("Received for the bulletin: D2N2 news") == 1
