"""The outbox in a real database: snapshot, claim, record, release and recover."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clock, issues, outbox
from mailer.contacts import email_hash
from mailer.models import (
    BounceEvent,
    BounceKind,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    IssueStatus,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from mailer.outbox import Outcome, Result
from mailer.settings import DeliverySettings
from tests.outbox_fixtures import approved, drafted, external_org, people, start

SETTINGS = DeliverySettings()


def _status(session: Session) -> dict[int, DeliveryStatus]:
    session.expire_all()
    return {d.contact_id: d.status for d in session.exec(select(Delivery))}


def test_starting_a_send_snapshots_the_audience_once(session: Session) -> None:
    # One delivery per contact; a contact who joins afterwards is not added.
    readers = people(session, 5)
    issue = approved(session)
    assert start(session, issue) == 5
    assert issue.status is IssueStatus.SENDING
    assert issue.send_started_at is not None
    people(session, 1, domain="latecomer.example")
    assert len(_status(session)) == 5
    assert set(_status(session)) == {c.id for c in readers}
    with pytest.raises(issues.IssueStateError, match="only an approved issue can be sent"):
        start(session, issue)


def test_a_draft_cannot_be_sent(session: Session) -> None:
    people(session, 1)
    draft = drafted(session, "bulletin.md")
    with pytest.raises(issues.IssueStateError, match="draft: only an approved issue"):
        start(session, draft)


def test_claims_take_due_rows_in_order_and_are_recorded(session: Session) -> None:
    people(session, 5)
    start(session, approved(session))
    first = outbox.claim(session, "w1", batch=3)
    assert [c.email for c in first] == [
        "reader0@lep0.example",
        "reader1@lep1.example",
        "reader2@lep2.example",
    ]
    second = outbox.claim(session, "w2", batch=3)
    assert len(second) == 2
    assert outbox.claim(session, "w3", batch=3) == []
    outbox.record(
        session,
        [
            Result(first[0].delivery_id, Outcome.SENT, 250, "2.0.0 queued as A1"),
            Result(first[1].delivery_id, Outcome.DEFERRED, 451, "4.3.0 try later"),
            Result(first[2].delivery_id, Outcome.FAILED, 550, "5.1.1 no such user"),
        ],
        SETTINGS,
        "w1",
    )
    rows = {d.id: d for d in session.exec(select(Delivery))}
    sent, deferred, failed = (rows[c.delivery_id] for c in first)
    assert (sent.status, sent.last_code, sent.sent_at is not None) == (
        DeliveryStatus.SENT,
        250,
        True,
    )
    assert deferred.status is DeliveryStatus.DEFERRED
    assert deferred.next_attempt_at is not None
    assert failed.status is DeliveryStatus.FAILED
    assert failed.last_reply == "5.1.1 no such user"


def test_a_permanent_failure_suppresses_the_address_at_once(session: Session) -> None:
    readers = people(session, 2)
    issue = approved(session)
    start(session, issue)
    claimed = outbox.claim(session, "w", batch=10)
    outbox.record(
        session,
        [Result(claimed[0].delivery_id, Outcome.FAILED, 550, "5.1.1 unknown")],
        SETTINGS,
        "w",
    )
    session.expire_all()
    bounced = session.get(Contact, readers[0].id)
    assert bounced is not None and bounced.status is ContactStatus.SUPPRESSED
    event = session.exec(select(BounceEvent)).one()
    assert (event.kind, event.code, event.source) == (BounceKind.PERMANENT, 550, "smtp")
    assert session.exec(
        select(Suppression).where(col(Suppression.email_hash) == email_hash(readers[0].email))
    ).one()


def test_deferrals_back_off_and_give_up_after_the_deadline(session: Session) -> None:
    people(session, 1)
    start(session, approved(session))
    base = datetime(2027, 1, 7, 9, 30, tzinfo=UTC)
    waits = []
    with clock.frozen(base) as frozen:
        session.execute(sa.update(Delivery).values(created_at=base))
        session.commit()
        for _ in range(4):
            claimed = outbox.claim(session, "w", batch=1)
            assert len(claimed) == 1
            outbox.record(
                session,
                [Result(claimed[0].delivery_id, Outcome.DEFERRED, 452, "full")],
                SETTINGS,
                "w",
            )
            row = session.exec(select(Delivery)).one()
            session.refresh(row)
            assert row.next_attempt_at is not None
            waits.append(row.next_attempt_at - frozen.at)
            assert outbox.claim(session, "w", batch=1) == []  # not due yet
            frozen.set(row.next_attempt_at)
        assert waits == [
            timedelta(minutes=5),
            timedelta(minutes=10),
            timedelta(minutes=20),
            timedelta(minutes=40),
        ]
        frozen.set(base + timedelta(hours=73))
        claimed = outbox.claim(session, "w", batch=1)
        outbox.record(
            session, [Result(claimed[0].delivery_id, Outcome.DEFERRED, 452, "full")], SETTINGS, "w"
        )
    row = session.exec(select(Delivery)).one()
    session.refresh(row)
    assert row.status is DeliveryStatus.FAILED
    assert row.last_reply == "gave up after 72 h: full"


def test_contacts_who_left_since_the_snapshot_are_skipped_at_the_claim(session: Session) -> None:
    readers = people(session, 4)
    start(session, approved(session))
    unsubscribed, suppressed, erased, kept = readers
    session.execute(
        sa.update(Subscription)
        .where(col(Subscription.contact_id) == unsubscribed.id)
        .values(status=SubscriptionStatus.UNSUBSCRIBED)
    )
    session.add(Suppression(email_hash=suppressed.email_hash, reason=SuppressionReason.BOUNCE))
    session.execute(
        sa.update(Contact).where(col(Contact.id) == erased.id).values(status=ContactStatus.ERASED)
    )
    session.commit()
    claimed = outbox.claim(session, "w", batch=10)
    assert [c.contact_id for c in claimed] == [kept.id]
    rows = {d.contact_id: d for d in session.exec(select(Delivery))}
    assert rows[unsubscribed.id or 0].status is DeliveryStatus.SUPPRESSED
    assert rows[unsubscribed.id or 0].last_reply == "skipped: subscription is unsubscribed"
    assert rows[suppressed.id or 0].last_reply == "skipped: address is suppressed"
    assert rows[erased.id or 0].last_reply == "skipped: contact is erased"


def test_the_firewall_refuses_an_outside_contact_found_in_a_bulletin_outbox(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    # The contact moved to a government department after the snapshot was taken.
    readers = people(session, 2)
    start(session, approved(session))
    session.execute(
        sa.update(Contact)
        .where(col(Contact.id) == readers[1].id)
        .values(organisation_id=external_org(session))
    )
    session.commit()
    claimed = outbox.claim(session, "w", batch=10)
    assert [c.contact_id for c in claimed] == [readers[0].id]
    refused = session.exec(select(Delivery).where(col(Delivery.contact_id) == readers[1].id)).one()
    assert refused.status is DeliveryStatus.FAILED
    assert (refused.last_reply or "").startswith("refused by the firewall")
    assert "refused" in caplog.text


def test_release_gives_rows_back_and_recover_marks_a_dead_senders_rows_in_doubt(
    session: Session,
) -> None:
    people(session, 4)
    issue = approved(session)
    start(session, issue)
    mine = outbox.claim(session, "w-alive", batch=2)
    assert outbox.release(session, "w-alive") == 2
    assert all(s is DeliveryStatus.QUEUED for s in _status(session).values())
    # A sender on this host whose process has exited.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    ghost = f"{socket.gethostname()}:{dead.stdout.strip()}:abc"
    outbox.claim(session, ghost, batch=2)
    alive = f"{socket.gethostname()}:{os.getpid()}:def"
    outbox.claim(session, alive, batch=2)
    assert outbox.recover(session, claim_timeout=timedelta(minutes=5)) == 2
    rows = list(session.exec(select(Delivery).order_by(col(Delivery.id))))
    for row in rows:
        session.refresh(row)
    assert [(r.status, r.in_doubt) for r in rows] == [
        (DeliveryStatus.QUEUED, True),
        (DeliveryStatus.QUEUED, True),
        (DeliveryStatus.CLAIMED, False),
        (DeliveryStatus.CLAIMED, False),
    ]
    # An old claim from another machine is recovered after the claim timeout.
    with clock.frozen(clock.now() + timedelta(minutes=6)):
        assert outbox.recover(session, claim_timeout=timedelta(minutes=5)) == 2
    assert len(mine) == 2


def test_an_issue_is_sent_when_nothing_is_left_and_the_report_adds_up(session: Session) -> None:
    people(session, 3)
    issue = approved(session)
    start(session, issue)
    claimed = outbox.claim(session, "w", batch=10)
    outbox.record(
        session,
        [
            Result(claimed[0].delivery_id, Outcome.SENT, 250, "ok"),
            Result(claimed[1].delivery_id, Outcome.SENT, 250, "ok"),
            Result(claimed[2].delivery_id, Outcome.DEFERRED, 421, "busy"),
        ],
        SETTINGS,
        "w",
    )
    assert issue.id is not None
    assert not outbox.finish_if_done(session, issue.id)
    report = outbox.report(session, issue.id)
    assert report.counts == {DeliveryStatus.SENT: 2, DeliveryStatus.DEFERRED: 1}
    assert report.failures == [("reader2@lep2.example", 421, "busy")]
    session.execute(
        sa.update(Delivery)
        .where(col(Delivery.status) == DeliveryStatus.DEFERRED)
        .values(status=DeliveryStatus.SENT)
    )
    session.commit()
    assert outbox.finish_if_done(session, issue.id)
    session.refresh(issue)
    assert issue.status is IssueStatus.SENT
    assert outbox.report(session, issue.id).total == 3


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (250, Outcome.SENT),
        (251, Outcome.SENT),
        (421, Outcome.DEFERRED),
        (451, Outcome.DEFERRED),
        (0, Outcome.DEFERRED),
        (550, Outcome.FAILED),
        (554, Outcome.FAILED),
    ],
)
def test_replies_are_classified(code: int, outcome: Outcome) -> None:
    assert outbox.classify(code) is outcome


def test_a_result_for_a_claim_taken_over_is_not_written(session: Session) -> None:
    # A slow sender's claim was recovered and re-claimed by another: its late result must
    # not overwrite the row the other sender now holds.
    people(session, 1)
    start(session, approved(session))
    [slow] = outbox.claim(session, "slow", batch=1)
    with clock.frozen(clock.now() + timedelta(minutes=10)):
        assert outbox.recover(session, claim_timeout=timedelta(minutes=5)) == 1
        [fast] = outbox.claim(session, "fast", batch=1)
    assert fast.delivery_id == slow.delivery_id
    written = outbox.record(session, [Result(slow.delivery_id, Outcome.RELEASED)], SETTINGS, "slow")
    assert written == 0
    row = session.exec(select(Delivery)).one()
    session.refresh(row)
    assert (row.status, row.claimed_by, row.in_doubt) == (DeliveryStatus.CLAIMED, "fast", True)


def test_a_live_sender_refreshes_its_claims_so_they_are_not_recovered(session: Session) -> None:
    people(session, 2)
    start(session, approved(session))
    outbox.claim(session, "busy", batch=2)
    later = clock.now() + timedelta(minutes=4)
    with clock.frozen(later):
        assert outbox.touch(session, "busy") == 2
    with clock.frozen(later + timedelta(minutes=4)):
        assert outbox.recover(session, claim_timeout=timedelta(minutes=5)) == 0


def test_an_error_of_ours_fails_the_delivery_without_suppressing_the_address(
    session: Session,
) -> None:
    readers = people(session, 1)
    start(session, approved(session))
    [row] = outbox.claim(session, "w", batch=1)
    outbox.record(
        session, [Result(row.delivery_id, Outcome.ERROR, 0, "cannot build")], SETTINGS, "w"
    )
    session.expire_all()
    contact = session.get(Contact, readers[0].id)
    assert contact is not None and contact.status is ContactStatus.ACTIVE
    assert session.exec(select(BounceEvent)).first() is None
