"""The outbox: one delivery per issue and contact, claimed before SMTP and recorded after.

A send starts by snapshotting the audience into the outbox. Senders claim batches
(``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several can share an issue),
check each contact again at the claim (unsubscribed, suppressed or erased since: skipped;
outside the LEPs for the bulletin: refused by the firewall), send, and record each reply.

A claim is a lease: it names its sender and expires unless the sender renews it
(:func:`renew`, which also tells the sender which rows it still holds). Just before a
sender hands a message to the relay it notes it in its journal (:mod:`mailer.journal`),
and again as soon as the relay accepts it. A claim whose sender
died, or whose lease ran out, is taken back (:func:`recover`): rows the relay accepted
are recorded as sent; rows never handed over are simply queued again; rows handed over
without a reply may have been delivered, and are sent again with the same Message-ID,
counted as in doubt. So is a message whose connection was lost after all of
it was sent (the reply is unknown). Nothing queued is ever skipped.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Session, col

from mailer import audiences, bounces, clock, issues, privacy
from mailer.audiences import FirewallError
from mailer.db import driver_value, rowcount, write_lock
from mailer.journal import Entries
from mailer.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Organisation,
    OrganisationKind,
    Publication,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from mailer.publications import AudienceRule
from mailer.settings import DeliverySettings

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=DeliverySettings.model_fields["claim_timeout_seconds"].default)
IN_DOUBT = (
    "handed to the relay but no reply recorded (a crash, a pause or a lost connection): "
    "sent again with the same Message-ID, so a reader may have it twice"
)

SENDABLE = (IssueStatus.APPROVED, IssueStatus.SCHEDULED)
OPEN = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED, DeliveryStatus.DEFERRED)


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"  # a permanent (5xx) reply: the address bounced and is suppressed
    ERROR = "error"  # could not be sent for a reason of ours (not the address's): failed
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this sender holds: everything needed to make and send its message."""

    delivery_id: int
    issue_id: int
    contact_id: int
    email: str
    name: str
    publication: Publication
    organisation_kind: OrganisationKind
    in_doubt: bool


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one claimed delivery."""

    delivery_id: int
    outcome: Outcome
    code: int = 0
    reply: str = ""
    in_doubt: bool = False  # all of the message was sent but no reply came


@dataclass
class Report:
    """A send's figures."""

    issue_id: int
    counts: dict[DeliveryStatus, int]
    in_doubt: int
    started_at: datetime | None
    finished_at: datetime | None
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)
    reply_classes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def rate(self) -> float | None:
        """Messages handed over (sent) per second."""
        duration = self.duration
        if duration is None or duration.total_seconds() <= 0:
            return None
        return self.counts.get(DeliveryStatus.SENT, 0) / duration.total_seconds()


def worker_name() -> str:
    """This process's name in ``claimed_by``: host, process id, and a random part."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def classify(code: int) -> Outcome:
    """2xx sent; 5xx failed (permanent); 4xx, or no reply at all, deferred."""
    if 200 <= code < 300:
        return Outcome.SENT
    if 500 <= code < 600:
        return Outcome.FAILED
    return Outcome.DEFERRED


def _check_sendable(issue: Issue) -> None:
    if issue.status not in SENDABLE:
        raise issues.IssueStateError(
            f"issue {issue.id} is {issue.status}: only an approved issue can be sent "
            "(`mailer issue approve` first)"
        )


def would_queue(session: Session, issue: Issue, rule: AudienceRule) -> int:
    """How many deliveries :func:`enqueue` would queue now (the same audience, counted by
    the same query), for a confirmation; changes nothing.

    :raises IssueStateError: the issue is not approved (or scheduled).
    """
    _check_sendable(issue)
    return audiences.count(session, issue.publication, rule)


def enqueue(session: Session, issue: Issue, rule: AudienceRule) -> int:
    """Snapshot the audience into the outbox and mark the issue as sending.

    Contacts who join later are not added. Returns the number of deliveries queued.

    :raises IssueStateError: the issue is not approved (or scheduled).
    """
    _check_sendable(issue)
    now = clock.now()
    members = audiences.members(issue.publication, rule).subquery()
    table = Delivery.metadata.tables["deliveries"]
    chosen = sa.select(
        sa.literal(issue.id).label("issue_id"),
        members.c.id.label("contact_id"),
        members.c.organisation_id.label("organisation_id"),
        sa.literal(DeliveryStatus.QUEUED.value).label("status"),
        sa.literal(0).label("attempts"),
        sa.literal(False).label("in_doubt"),
        sa.literal(now, type_=table.c.created_at.type).label("c"),
        sa.literal(now, type_=table.c.updated_at.type).label("u"),
    )
    session.execute(
        table.insert().from_select(
            [
                "issue_id",
                "contact_id",
                "organisation_id",
                "status",
                "attempts",
                "in_doubt",
                "created_at",
                "updated_at",
            ],
            chosen,
        )
    )
    issues.transition(session, issue, IssueStatus.SENDING)
    issue.send_started_at = now
    session.flush()
    assert issue.id is not None
    return sum(counts(session, issue.id).values())


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        col(Delivery.status) == DeliveryStatus.QUEUED,
        sa.and_(
            col(Delivery.status) == DeliveryStatus.DEFERRED,
            col(Delivery.next_attempt_at) <= now,
        ),
    )


@cache
def _skip_reason(contact_status: str, subscription: str | None, suppressed: bool) -> str | None:
    """Why a claimed row is not sent (its contact's state, as stored), or None. Cached:
    the claim asks for every row, and there are few distinct answers."""
    status = ContactStatus(contact_status)
    if status is not ContactStatus.ACTIVE:
        return f"skipped: contact is {status}"
    if suppressed:
        return "skipped: address is suppressed"
    if subscription is None or SubscriptionStatus(subscription) is not SubscriptionStatus.ACTIVE:
        return f"skipped: subscription is {subscription or 'gone'}"
    return None


@cache
def _firewall(publication: str, kind: str) -> tuple[Publication, OrganisationKind, str | None]:
    """A claimed row's publication and organisation kind, as stored, made enums, and the
    firewall's refusal, if any (:func:`mailer.audiences.check_recipient`). Cached: the
    claim asks for every row, and there are few distinct pairs."""
    checked = Publication(publication), OrganisationKind(kind)
    try:
        audiences.check_recipient(*checked)
    except FirewallError as exc:
        return *checked, str(exc)
    return *checked, None


_DUE_AGAIN = "due again"
_QUEUED = "queued"


@cache
def _due_rows(kind: str, postgres: bool) -> sa.Select[Any]:
    """One issue's due rows of one kind (deferred and due again, or queued), in id order,
    up to a number, with what sending and the checks at the claim need of each (but the
    issue's publication, a parameter), as plain values. Each kind is a range of the
    outbox's claim index read in id order, so a claim costs its batch, not the size of the
    outbox. Built once (this is the send's hot path)."""
    deliveries = Delivery.metadata.tables["deliveries"]
    contacts = Contact.metadata.tables["contacts"]
    orgs = Organisation.metadata.tables["organisations"]
    subs = Subscription.metadata.tables["subscriptions"]
    suppressions = Suppression.metadata.tables["suppressions"]
    due = (
        sa.and_(
            deliveries.c.status == DeliveryStatus.DEFERRED,
            deliveries.c.next_attempt_at
            <= sa.bindparam("b_now", type_=deliveries.c.next_attempt_at.type),
        )
        if kind == _DUE_AGAIN
        else deliveries.c.status == DeliveryStatus.QUEUED
    )
    chosen = (
        sa.select(
            deliveries.c.id,
            deliveries.c.issue_id,
            deliveries.c.contact_id,
            deliveries.c.in_doubt,
            # As stored, not made enums row by row: see _firewall and _skip_reason.
            contacts.c.email,
            contacts.c.name,
            sa.type_coerce(contacts.c.status, sa.String),
            sa.type_coerce(orgs.c.kind, sa.String),
            sa.type_coerce(subs.c.status, sa.String),
            suppressions.c.id,
        )
        .select_from(deliveries)
        .join(contacts, contacts.c.id == deliveries.c.contact_id)
        .join(orgs, orgs.c.id == contacts.c.organisation_id)
        .outerjoin(
            subs,
            sa.and_(
                subs.c.contact_id == contacts.c.id,
                subs.c.publication
                == sa.bindparam("b_publication", type_=sa.String),  # the issue's, as stored
            ),
        )
        .outerjoin(suppressions, suppressions.c.email_hash == contacts.c.email_hash)
        .where(deliveries.c.issue_id == sa.bindparam("b_issue"), due)
        .order_by(deliveries.c.id)
        .limit(sa.bindparam("b_room", type_=sa.Integer))
    )
    if postgres:  # several senders share the outbox: each skips the rows another takes
        chosen = chosen.with_for_update(skip_locked=True, of=deliveries)
    return chosen


def _mark(dialect: Dialect) -> str:
    """The driver's placeholder for one positional parameter."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _shape(rows: int) -> int:
    """How many rows a statement made for ``rows`` is written for: the next power of two
    (the rest padded with rows that change nothing), so that a send prepares and keeps
    a dozen such statements, not one for every count."""
    return 1 << max(0, (rows - 1).bit_length())


def _take_sql(dialect: Dialect, rows: int) -> str:
    """The statement that claims ``rows`` rows chosen by :func:`_due_rows` (in the same
    transaction) for a worker, by id. Its parameters: the worker, the time, the lease's
    end, the time again, then the ids."""
    mark = _mark(dialect)
    return (
        f"UPDATE deliveries SET status = '{DeliveryStatus.CLAIMED.value}', "
        f"claimed_by = {mark}, claimed_at = {mark}, lease_expires_at = {mark}, "
        f"attempts = attempts + 1, updated_at = {mark} "
        f"WHERE id IN ({', '.join([mark] * rows)})"
    )


@cache
def _sending(one: bool) -> sa.Select[Any]:
    """The sending issues (only the one ``b_issue`` when ``one``), in id order, with their
    publications as stored."""
    table = Issue.metadata.tables["issues"]
    query = sa.select(table.c.id, sa.type_coerce(table.c.publication, sa.String)).where(
        table.c.status == IssueStatus.SENDING
    )
    if one:
        query = query.where(table.c.id == sa.bindparam("b_issue"))
    return query.order_by(table.c.id)


def claim(
    session: Session,
    worker: str,
    *,
    batch: int,
    issue_id: int | None = None,
    lease: timedelta = LEASE,
) -> list[Claimed]:
    """Claim up to ``batch`` due deliveries of sending issues for ``lease``, and commit.

    Issues are taken in id order; in each, deliveries deferred and due again come first
    (they have waited), then queued ones, each in id order.

    Each contact is checked again: one unsubscribed, suppressed or erased since the
    snapshot is marked suppressed; one outside the LEPs in an internal publication's outbox
    is refused by the firewall (failed, logged). Neither is returned.
    """
    now = clock.now()
    postgres = session.get_bind().dialect.name == "postgresql"
    write_lock(session)  # the rows are read, then claimed: no writer comes in between
    taken: list[tuple[str, Sequence[Any]]] = []  # an issue's publication, its rows of a kind
    ids: list[int] = []
    chosen = {"b_issue": issue_id} if issue_id is not None else {}
    for issue, publication in session.execute(_sending(issue_id is not None), chosen).all():
        for kind in (_DUE_AGAIN, _QUEUED):
            room = batch - len(ids)
            if room <= 0:
                break
            due = {"b_issue": issue, "b_publication": publication, "b_room": room, "b_now": now}
            found = session.execute(_due_rows(kind, postgres), due).all()
            taken.append((publication, found))
            ids += (row[0] for row in found)
    if not ids:
        session.commit()
        return []
    connection = session.connection()
    table = Delivery.metadata.tables["deliveries"]
    when = driver_value(connection, table.c.updated_at, now)
    until = driver_value(connection, table.c.lease_expires_at, now + lease)
    ids += ids[:1] * (_shape(len(ids)) - len(ids))  # an id twice is claimed once
    connection.exec_driver_sql(
        _take_sql(connection.dialect, len(ids)), (worker, when, until, when, *ids)
    )
    claimed: list[Claimed] = []
    refused: dict[int, str] = {}
    skipped: dict[int, str] = {}
    for stored, found in taken:
        for (
            delivery_id,
            issue_of,
            contact_id,
            in_doubt,
            email,
            name,
            contact_status,
            kind,
            subscription,
            suppression_id,
        ) in found:
            publication, kind, refusal = _firewall(stored, kind)
            if refusal is not None:
                log.error("delivery %s to contact %s refused: %s", delivery_id, contact_id, refusal)
                refused[delivery_id] = f"refused by the firewall: {refusal}"
                continue
            reason = _skip_reason(contact_status, subscription, suppression_id is not None)
            if reason is not None:
                skipped[delivery_id] = reason
                continue
            claimed.append(
                Claimed(delivery_id, issue_of, contact_id, email, name, publication, kind, in_doubt)
            )
    _finalise(session, skipped, DeliveryStatus.SUPPRESSED, now)
    _finalise(session, refused, DeliveryStatus.FAILED, now)
    session.commit()
    return claimed


def _finalise(
    session: Session, replies: dict[int, str], status: DeliveryStatus, now: datetime
) -> None:
    """Close deliveries that will not be sent, with the reason as their reply."""
    if not replies:
        return
    table = Delivery.metadata.tables["deliveries"]
    session.execute(
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values(
            status=status,
            last_reply=sa.bindparam("b_reply"),
            claimed_by=None,
            lease_expires_at=None,
            updated_at=now,
        ),
        [{"b_id": i, "b_reply": reply[:1000]} for i, reply in replies.items()],
    )


def _backoff(attempts: int, settings: DeliverySettings) -> timedelta:
    seconds = settings.retry_base_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.retry_max_seconds))


def _fenced(table: sa.Table, worker: str | sa.BindParameter[str]) -> sa.ColumnElement[bool]:
    """The rows ``worker`` still holds: a result for one taken over is not written."""
    return sa.and_(
        table.c.id == sa.bindparam("b_id"),
        table.c.status == DeliveryStatus.CLAIMED,
        table.c.claimed_by == worker,
    )


_SENT_CHUNK = 512  # rows a statement records: four values each, far below SQLite's limit


def _sent_sql(dialect: Dialect, rows: int) -> str:
    """The statement that records ``rows`` accepted messages at once, fenced in its own
    WHERE (no read first): the rows' own values (id, code, reply, in doubt) come as a
    VALUES list joined on the id. Its parameters: the time (twice), the rows' values in
    order, the worker. One statement, not one per row: SQLite releases the GIL at every
    step of a statement, and the event loop's thread keeps it in between."""
    mark = _mark(dialect)
    if dialect.name == "postgresql":
        row = f"({mark}::bigint, {mark}::integer, {mark}::text, {mark}::boolean)"
        alias, names = "v (id, code, reply, doubt)", ["id", "code", "reply", "doubt"]
    else:  # SQLite names a VALUES list's columns column1, column2, ...
        row = f"({mark}, {mark}, {mark}, {mark})"
        alias, names = "v", [f"column{n}" for n in range(1, 5)]
    id_, code, reply, doubt = (f"v.{name}" for name in names)
    return (
        f"UPDATE deliveries SET status = '{DeliveryStatus.SENT.value}', sent_at = {mark}, "
        f"updated_at = {mark}, last_code = {code}, last_reply = {reply}, "
        f"in_doubt = (deliveries.in_doubt OR {doubt}), claimed_by = NULL, "
        f"lease_expires_at = NULL FROM (VALUES {', '.join([row] * rows)}) AS {alias} "
        f"WHERE deliveries.id = {id_} AND deliveries.status = '{DeliveryStatus.CLAIMED.value}' "
        f"AND deliveries.claimed_by = {mark}"
    )


def _record_sent(session: Session, results: Sequence[Result], worker: str, now: datetime) -> int:
    """The common case, set-based: every message the relay accepted, recorded by one
    statement a chunk of rows. Returns the rows written."""
    if not results:
        return 0
    connection = session.connection()
    when = driver_value(connection, Delivery.metadata.tables["deliveries"].c.updated_at, now)
    written = 0
    for start in range(0, len(results), _SENT_CHUNK):
        chunk = results[start : start + _SENT_CHUNK]
        values: list[object] = [when, when]
        for r in chunk:
            values += (r.delivery_id, r.code or None, r.reply[:1000] or None, r.in_doubt)
        shape = _shape(len(chunk))
        values += (None, None, None, False) * (shape - len(chunk))  # no id: no row
        values.append(worker)
        sql = _sent_sql(connection.dialect, shape)
        written += rowcount(connection.exec_driver_sql(sql, tuple(values)))
    return written


def _record_others(
    session: Session,
    results: Sequence[Result],
    settings: DeliverySettings,
    worker: str,
    now: datetime,
) -> int:
    """Deferred (with back-off, or failed past the deadline), failed and released rows:
    these need the row's attempts and age, so they are read first. Returns the rows
    written."""
    if not results:
        return 0
    table = Delivery.metadata.tables["deliveries"]
    by_id = {r.delivery_id: r for r in results}
    state = {
        row.id: row
        for row in session.execute(
            sa.select(
                table.c.id,
                table.c.attempts,
                table.c.created_at,
                table.c.contact_id,
                table.c.in_doubt,
            ).where(
                table.c.id.in_(list(by_id)),
                table.c.status == DeliveryStatus.CLAIMED,
                table.c.claimed_by == worker,
            )
        )
    }
    deadline = timedelta(hours=settings.retry_deadline_hours)
    updates: list[dict[str, object]] = []
    bounced: list[tuple[int, int, Result]] = []
    for delivery_id, result in by_id.items():
        row = state.get(delivery_id)
        if row is None:
            continue
        values: dict[str, object] = {
            "b_id": delivery_id,
            "status": DeliveryStatus.QUEUED,
            "attempts": row.attempts,
            "next_attempt_at": None,
            "last_code": result.code or None,
            "last_reply": result.reply[:1000] or None,
            "in_doubt": bool(row.in_doubt) or result.in_doubt,
        }
        if result.outcome is Outcome.FAILED:
            values.update(status=DeliveryStatus.FAILED)
            bounced.append((delivery_id, row.contact_id, result))
        elif result.outcome is Outcome.ERROR:
            values.update(status=DeliveryStatus.FAILED)
        elif result.outcome is Outcome.DEFERRED:
            if now - row.created_at >= deadline:
                values.update(
                    status=DeliveryStatus.FAILED,
                    last_reply=f"gave up after {settings.retry_deadline_hours:g} h: {result.reply}"[
                        :1000
                    ],
                )
            else:
                values.update(
                    status=DeliveryStatus.DEFERRED,
                    next_attempt_at=now + _backoff(row.attempts, settings),
                )
        else:  # released unsent: the attempt does not count
            values.update(attempts=max(0, row.attempts - 1), last_code=None, last_reply=None)
        updates.append(values)
    if not updates:
        return 0
    written = session.execute(
        table.update()
        .where(_fenced(table, worker))
        .values(
            status=sa.bindparam("status"),
            attempts=sa.bindparam("attempts"),
            next_attempt_at=sa.bindparam("next_attempt_at"),
            last_code=sa.bindparam("last_code"),
            last_reply=sa.bindparam("last_reply"),
            in_doubt=sa.bindparam("in_doubt"),
            claimed_by=None,
            lease_expires_at=None,
            updated_at=now,
        ),
        updates,
    )
    for delivery_id, contact_id, result in bounced:
        bounces.smtp_failure(session, delivery_id, contact_id, result.code, result.reply)
    return rowcount(written)


def record(
    session: Session, results: Sequence[Result], settings: DeliverySettings, worker: str
) -> int:
    """Record replies: sent; deferred with back-off (failed past the deadline); failed with
    a permanent bounce that suppresses the address; failed for an error of ours; or
    released unsent. Only rows ``worker`` still holds are written (a row recovered by
    another sender meanwhile is theirs now). Commits; returns the rows written."""
    if not results:
        return 0
    now = clock.now()
    latest = list({r.delivery_id: r for r in results}.values())
    sent = [r for r in latest if r.outcome is Outcome.SENT]
    others = [r for r in latest if r.outcome is not Outcome.SENT]
    written = _record_sent(session, sent, worker, now)
    written += _record_others(session, others, settings, worker, now)
    if written < len(latest):
        log.warning(
            "%s results came after their claims were taken over: not recorded",
            len(latest) - written,
        )
    session.commit()
    return written


def renew(session: Session, worker: str, *, lease: timedelta = LEASE) -> set[int]:
    """Extend the lease on every claim ``worker`` still holds; returns their ids (a row
    missing from them was taken over and must not be sent by ``worker``). Commits."""
    now = clock.now()
    held = set(
        session.execute(
            sa.update(Delivery)
            .where(
                # Every row has an issue: naming them lets the claim index serve (one
                # range of claimed rows an issue), not a scan of the whole outbox.
                col(Delivery.issue_id).in_(sa.select(col(Issue.id))),
                col(Delivery.status) == DeliveryStatus.CLAIMED,
                col(Delivery.claimed_by) == worker,
            )
            .values(lease_expires_at=now + lease)
            .returning(col(Delivery.id))
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    session.commit()
    return held


def release(session: Session, worker: str) -> int:
    """Give back every delivery ``worker`` claimed and did not record (a clean stop)."""
    now = clock.now()
    result = session.execute(
        sa.update(Delivery)
        .where(col(Delivery.status) == DeliveryStatus.CLAIMED, col(Delivery.claimed_by) == worker)
        .values(
            status=DeliveryStatus.QUEUED,
            claimed_by=None,
            lease_expires_at=None,
            attempts=sa.case((col(Delivery.attempts) > 0, col(Delivery.attempts) - 1), else_=0),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return rowcount(result)


def _pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: believe kill()
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def holders(session: Session) -> set[str]:
    """The senders that hold claimed deliveries now."""
    return {
        holder
        for holder in session.execute(
            sa.select(col(Delivery.claimed_by))
            .where(col(Delivery.status) == DeliveryStatus.CLAIMED)
            .group_by(col(Delivery.claimed_by))
        ).scalars()
        if holder is not None
    }


def stopped(worker: str) -> bool:
    """Whether the sender ``worker`` (a :func:`worker_name`) ran on this machine and its
    process no longer exists."""
    parts = worker.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname()[:60] or not parts[1].isdigit():
        return False
    return not _pid_alive(int(parts[1]))


@dataclass(frozen=True)
class Recovered:
    """Claims taken back from senders that stopped or lost their lease."""

    requeued: int = 0  # never handed to the relay: queued again as if never claimed
    in_doubt: int = 0  # handed over without a reply: sent again, with the same Message-ID
    accepted: int = 0  # accepted by the relay (its sender's journal says): recorded as sent

    @property
    def total(self) -> int:
        return self.requeued + self.in_doubt + self.accepted


def _unknown(worker: str) -> Entries | None:
    return None


def recover(session: Session, journals: Callable[[str], Entries | None] = _unknown) -> Recovered:
    """Take back deliveries whose sender stopped without recording them. Commits.

    A claim is abandoned when its lease has expired (its sender died elsewhere, hangs, or
    was paused), or at once when its process on this machine no longer exists.
    ``journals(sender)`` says what a sender had begun handing over and what the relay had
    accepted (:mod:`mailer.journal`), or None when that cannot be known. An accepted row
    is recorded as sent; one handed over without an answer, or of a sender whose journal
    is unknown, may have been delivered: it is queued again in doubt; the rest are simply
    queued again.
    """
    now = clock.now()
    dead = [holder for holder in holders(session) if stopped(holder)]
    abandoned = (
        sa.select(col(Delivery.id), col(Delivery.claimed_by), col(Delivery.in_doubt))
        .where(
            col(Delivery.status) == DeliveryStatus.CLAIMED,
            sa.or_(
                col(Delivery.claimed_by).is_(None),
                col(Delivery.lease_expires_at) < now,
                # (Claimed by an older version, which set no lease.)
                sa.and_(
                    col(Delivery.lease_expires_at).is_(None),
                    sa.or_(
                        col(Delivery.claimed_at).is_(None),
                        col(Delivery.claimed_at) < now - LEASE,
                    ),
                ),
                col(Delivery.claimed_by).in_(dead),
            ),
        )
        .order_by(col(Delivery.id))
    )
    if session.get_bind().dialect.name == "postgresql":
        # A sender paused in the middle of a transaction holds its rows' locks: take
        # those later rather than wait for it.
        abandoned = abandoned.with_for_update(skip_locked=True)
    read: dict[str | None, Entries | None] = {}
    accepted: list[int] = []
    doubtful: list[int] = []
    requeued: list[int] = []
    for delivery_id, holder, in_doubt in session.execute(abandoned):
        if holder not in read:
            read[holder] = journals(holder) if holder is not None else None
        entries = read[holder]
        if entries is not None and delivery_id in entries.accepted:
            accepted.append(delivery_id)
        elif in_doubt or entries is None or delivery_id in entries.handing:
            doubtful.append(delivery_id)
        else:
            requeued.append(delivery_id)
    taken_back: list[tuple[list[int], dict[str, object]]] = [
        (
            accepted,
            {
                "status": DeliveryStatus.SENT,
                "sent_at": now,
                "last_code": 250,
                "last_reply": "accepted (recorded from its sender's journal)",
            },
        ),
        (doubtful, {"status": DeliveryStatus.QUEUED, "in_doubt": True}),
        (requeued, {"status": DeliveryStatus.QUEUED}),
    ]
    for chosen, values in taken_back:
        for start in range(0, len(chosen), 1000):
            session.execute(
                sa.update(Delivery)
                .where(
                    col(Delivery.id).in_(chosen[start : start + 1000]),
                    col(Delivery.status) == DeliveryStatus.CLAIMED,
                )
                .values(claimed_by=None, lease_expires_at=None, updated_at=now, **values)
                .execution_options(synchronize_session=False)
            )
    session.commit()
    found = Recovered(requeued=len(requeued), in_doubt=len(doubtful), accepted=len(accepted))
    if found.total:
        log.warning(
            "took back %s claimed deliveries whose sender stopped: %s accepted by the relay "
            "(recorded as sent), %s never handed over (queued again), %s handed over "
            "without a reply (sent again, in doubt)",
            found.total,
            found.accepted,
            found.requeued,
            found.in_doubt,
        )
    return found


def counts(session: Session, issue_id: int) -> dict[DeliveryStatus, int]:
    """Deliveries of an issue by status."""
    rows = session.execute(
        sa.select(col(Delivery.status), sa.func.count())
        .where(col(Delivery.issue_id) == issue_id)
        .group_by(col(Delivery.status))
    ).all()
    return {DeliveryStatus(status): int(n) for status, n in rows}


def finish_if_done(session: Session, issue_id: int) -> bool:
    """Mark a sending issue sent once no delivery is left to try. Commits."""
    issue = issues.get(session, issue_id)
    if issue.status is not IssueStatus.SENDING:
        return issue.status is IssueStatus.SENT
    open_rows = session.execute(
        sa.select(sa.func.count()).where(
            col(Delivery.issue_id) == issue_id, col(Delivery.status).in_(OPEN)
        )
    ).scalar_one()
    if open_rows:
        return False
    last = session.execute(
        sa.select(sa.func.max(col(Delivery.updated_at))).where(col(Delivery.issue_id) == issue_id)
    ).scalar_one()
    issues.transition(session, issue, IssueStatus.SENT)
    issue.send_finished_at = last or clock.now()
    session.commit()
    log.info("issue %s (%s %s) is sent", issue_id, issue.publication, issue.number)
    return True


def has_work(session: Session, issue_id: int | None = None) -> bool:
    """Whether a sending issue has deliveries queued, claimed, or deferred and due now."""
    query = (
        sa.select(col(Delivery.id))
        .join(Issue, col(Issue.id) == col(Delivery.issue_id))
        .where(
            col(Issue.status) == IssueStatus.SENDING,
            sa.or_(_due(clock.now()), col(Delivery.status) == DeliveryStatus.CLAIMED),
        )
        .limit(1)
    )
    if issue_id is not None:
        query = query.where(col(Delivery.issue_id) == issue_id)
    return session.execute(query).first() is not None


def sending_issues(session: Session) -> list[int]:
    """Ids of the issues whose outbox is being drained."""
    return list(
        session.execute(
            sa.select(col(Issue.id)).where(col(Issue.status) == IssueStatus.SENDING)
        ).scalars()
    )


def report(session: Session, issue_id: int, failures: int = 10) -> Report:
    """Counts per status, in doubt, timing and the first failures with their replies."""
    issue = issues.get(session, issue_id)
    in_doubt = session.execute(
        sa.select(sa.func.count()).where(
            col(Delivery.issue_id) == issue_id, col(Delivery.in_doubt).is_(True)
        )
    ).scalar_one()
    last_sent = session.execute(
        sa.select(sa.func.max(col(Delivery.sent_at))).where(col(Delivery.issue_id) == issue_id)
    ).scalar_one()
    first = session.execute(
        sa.select(col(Contact.email), col(Delivery.last_code), col(Delivery.last_reply))
        .join(Contact, col(Contact.id) == col(Delivery.contact_id))
        .where(
            col(Delivery.issue_id) == issue_id,
            col(Delivery.status).in_([DeliveryStatus.FAILED, DeliveryStatus.DEFERRED]),
        )
        .order_by(col(Delivery.updated_at), col(Delivery.id))
        .limit(failures)
    ).all()
    classes: Counter[str] = Counter()
    start = sa.func.substr(
        col(Delivery.last_reply), sa.literal_column("1"), sa.literal_column("40")
    ).label("start")
    for code, begins, n in session.execute(
        sa.select(col(Delivery.last_code), start, sa.func.count())
        .where(
            col(Delivery.issue_id) == issue_id,
            col(Delivery.status).in_([DeliveryStatus.FAILED, DeliveryStatus.DEFERRED]),
        )
        .group_by(col(Delivery.last_code), start)
    ):
        classes[reply_class(code, begins or "")] += int(n)
    # Deliveries reduced to counts (retention, erasure) still count in the totals.
    totals = Counter(counts(session, issue_id))
    totals.update(privacy.counted(session, issue_id))
    return Report(
        issue_id=issue_id,
        counts=dict(totals),
        in_doubt=int(in_doubt),
        started_at=issue.send_started_at,
        finished_at=issue.send_finished_at or last_sent,
        failures=[(email, code, reply or "") for email, code, reply in first],
        reply_classes=dict(classes.most_common()),
    )


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def reply_class(code: int | None, reply: str) -> str:
    """How a failure or deferral is counted: a 5xx by its enhanced status (RFC 3463: 5.1.1
    is a bad address, 5.7.1 a policy refusal), a 4xx by its code (421: the relay is busy or
    closing), and one with no code (a lost connection, a refusal of ours) by its reason."""
    if code and 500 <= code < 600:
        found = _ENHANCED.search(reply)
        return f"{code} {found.group(0)}" if found else str(code)
    if code:
        return str(code)
    return reply.split(":")[0] or "no reply"
