"""The outbox in a real database: snapshot, claim, record, release and recover."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clock, issues, journal, outbox
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
from tests.helpers import exited_sender
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


def test_a_claim_takes_rows_due_again_first_then_queued_ones_and_skips_none(
    session: Session,
) -> None:
    people(session, 6)
    start(session, approved(session))
    first = outbox.claim(session, "w", batch=2)
    written = outbox.record(
        session,
        [
            Result(first[0].delivery_id, Outcome.SENT, 250, "2.0.0 queued as A1", in_doubt=True),
            Result(first[1].delivery_id, Outcome.DEFERRED, 451, "4.3.0 try later"),
        ],
        SETTINGS,
        "w",
    )
    assert written == 2
    sent = session.get(Delivery, first[0].delivery_id)
    assert sent is not None
    session.refresh(sent)
    assert (sent.status, sent.last_reply, sent.in_doubt, sent.claimed_by) == (
        DeliveryStatus.SENT,
        "2.0.0 queued as A1",
        True,
        None,
    )
    later = clock.now() + timedelta(seconds=SETTINGS.retry_base_seconds + 1)
    with clock.frozen(later):
        again = outbox.claim(session, "w", batch=2)
        # The deferred row, now due, is taken with the next queued one, in id order.
        assert [c.delivery_id for c in again] == sorted(
            [first[1].delivery_id, first[1].delivery_id + 1]
        )
        rest = outbox.claim(session, "w", batch=10)
    assert len(rest) == 3
    everyone = {c.delivery_id for c in [*first, *again, *rest]}
    assert len(everyone) == 6


def test_the_claim_reads_its_batch_from_an_index_in_order_not_the_whole_outbox(
    session: Session,
) -> None:
    # A claim must cost its batch: on SQLite no sort of every queued row (which made a
    # 100,000-recipient send quadratic), one range of the claim index instead.
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("the query plan is SQLite's")
    people(session, 3)
    start(session, approved(session))
    statement = outbox._due_rows("queued", postgres=False)
    now = "2030-01-01 00:00:00.000000"  # as SQLite stores times (the plan needs only a value)
    params = {"b_issue": 1, "b_room": 2, "b_now": now, "b_until": now}
    compiled = statement.compile(session.get_bind(), column_keys=None)
    plan = session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + str(compiled),
        tuple(
            {**compiled.params, **params, "b_worker": "w"}[k] for k in compiled.positiontup or ()
        ),
    )
    steps = " / ".join(str(row[-1]) for row in plan)
    assert "ix_deliveries_claim" in steps
    assert "TEMP B-TREE" not in steps


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


def test_release_gives_rows_back_and_recover_puts_only_what_was_handed_over_in_doubt(
    session: Session,
) -> None:
    people(session, 4)
    issue = approved(session)
    start(session, issue)
    mine = outbox.claim(session, "w-alive", batch=2)
    assert outbox.release(session, "w-alive") == 2
    assert all(s is DeliveryStatus.QUEUED for s in _status(session).values())
    # A sender on this host whose process has exited.
    ghost = exited_sender()
    lost = outbox.claim(session, ghost, batch=2)
    # Its journal says it had begun handing the first over when it died; not the second.
    journals = {ghost: journal.Entries(handing=frozenset({lost[0].delivery_id}))}
    alive = f"{socket.gethostname()}:{os.getpid()}:def"
    claimed_at = clock.now()  # the lease runs from (no earlier than) here
    outbox.claim(session, alive, batch=2)
    assert outbox.recover(session, journals.get) == outbox.Recovered(requeued=1, in_doubt=1)
    rows = list(session.exec(select(Delivery).order_by(col(Delivery.id))))
    for row in rows:
        session.refresh(row)
    assert [(r.status, r.in_doubt) for r in rows] == [
        (DeliveryStatus.QUEUED, True),
        (DeliveryStatus.QUEUED, False),
        (DeliveryStatus.CLAIMED, False),
        (DeliveryStatus.CLAIMED, False),
    ]
    # A claim from another machine is taken back once its lease has run out; with no
    # journal to read, all of it is in doubt.
    with clock.frozen(claimed_at + outbox.LEASE - timedelta(seconds=1)):
        assert outbox.recover(session).total == 0
    with clock.frozen(clock.now() + outbox.LEASE + timedelta(seconds=1)):
        assert outbox.recover(session) == outbox.Recovered(in_doubt=2)
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


@pytest.mark.parametrize(
    "late",
    [Outcome.RELEASED, Outcome.SENT, Outcome.DEFERRED],
)
def test_a_result_for_a_claim_taken_over_is_not_written(session: Session, late: Outcome) -> None:
    # A slow sender's claim was recovered and re-claimed by another: its late result must
    # not overwrite the row the other sender now holds (the accepted messages' set-based
    # statement is fenced in its own WHERE, like the rest).
    people(session, 1)
    start(session, approved(session))
    [slow] = outbox.claim(session, "slow", batch=1)
    with clock.frozen(clock.now() + timedelta(minutes=10)):
        handed = {"slow": journal.Entries(handing=frozenset({slow.delivery_id}))}
        assert outbox.recover(session, handed.get) == outbox.Recovered(in_doubt=1)
        [fast] = outbox.claim(session, "fast", batch=1)
    # The slow sender learns from its heartbeat that it no longer holds the row.
    assert outbox.renew(session, "slow") == set()
    assert fast.delivery_id == slow.delivery_id
    written = outbox.record(session, [Result(slow.delivery_id, late, 250)], SETTINGS, "slow")
    assert written == 0
    row = session.exec(select(Delivery)).one()
    session.refresh(row)
    assert (row.status, row.claimed_by, row.in_doubt) == (DeliveryStatus.CLAIMED, "fast", True)


def test_a_live_sender_refreshes_its_claims_so_they_are_not_recovered(session: Session) -> None:
    people(session, 2)
    start(session, approved(session))
    held = {c.delivery_id for c in outbox.claim(session, "busy", batch=2)}
    later = clock.now() + timedelta(minutes=4)
    with clock.frozen(later):
        assert outbox.renew(session, "busy") == held
    with clock.frozen(later + timedelta(minutes=4)):
        assert outbox.recover(session).total == 0
    with clock.frozen(later + outbox.LEASE + timedelta(seconds=1)):
        # Its journal (here: empty) says nothing was handed over yet.
        nothing = {"busy": journal.Entries()}
        assert outbox.recover(session, nothing.get) == outbox.Recovered(requeued=2)


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


@pytest.mark.parametrize(
    ("code", "reply", "kind"),
    [
        (550, "5.1.1 No such user", "550 5.1.1"),
        (554, "5.7.1 Message rejected as spam", "554 5.7.1"),
        (550, "mailbox unavailable", "550"),
        (421, "4.3.2 Service shutting down", "421"),
        (452, "4.2.2 Mailbox full", "452"),
        (None, "no reply after the message was sent: EOF", "no reply after the message was sent"),
        (0, "connection lost: reset", "connection lost"),
        (None, "refused by the firewall: an outside contact", "refused by the firewall"),
    ],
)
def test_failures_are_counted_by_reply_class(code: int | None, reply: str, kind: str) -> None:
    # 4xx by code (a relay problem), 5xx by enhanced status (bad address, policy).
    assert outbox.reply_class(code, reply) == kind


def test_rows_its_journal_says_the_relay_accepted_are_recorded_as_sent_not_sent_again(
    session: Session,
) -> None:
    # A sender was paused or killed after the relay's 250 but before writing it down.
    people(session, 3)
    start(session, approved(session))
    rows = outbox.claim(session, "gone", batch=3)
    ids = [row.delivery_id for row in rows]
    entries = journal.Entries(handing=frozenset(ids[:2]), accepted=frozenset(ids[:1]))
    with clock.frozen(clock.now() + outbox.LEASE + timedelta(seconds=1)):
        found = outbox.recover(session, {"gone": entries}.get)
    assert found == outbox.Recovered(accepted=1, in_doubt=1, requeued=1)
    session.expire_all()
    states = [
        (d.status, d.in_doubt) for d in session.exec(select(Delivery).order_by(col(Delivery.id)))
    ]
    assert states == [
        (DeliveryStatus.SENT, False),
        (DeliveryStatus.QUEUED, True),
        (DeliveryStatus.QUEUED, False),
    ]
