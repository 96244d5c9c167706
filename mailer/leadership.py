"""Which daemon leads: a lease in the database that its holder renews, with fencing terms.

One row (``leadership``) names the holder and when its lease ends. A daemon takes the
lead when the row is free, its lease has run out, or its holder's process on this
machine is gone; every change of holder raises the *term*, and a renewal or a note only
counts with the holder's own term, so a leader that was paused (SIGSTOP, a frozen VM)
and wakes after another took over can renew nothing and must stop acting. The leader
also fences itself by its own clock (see :class:`Lease`), so it stops before its lease
could have run out, whatever the database says later.

Leases are written in the holders' own wall clocks: the machines' clocks must agree
within the margin (a fifth of the lease, 12 s for the default 60 s): run NTP. A holder's
process counts as gone at once only on its own machine (by host name and process id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clock
from mailer.db import rowcount
from mailer.models import Leadership
from mailer.outbox import stopped

NAME = "daemon"


def _boot_clock() -> float:
    """Seconds on a clock that keeps counting through a pause or a suspend."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass
class Lease:
    """The lead as its holder sees it: the term, and the moment by its own clock after
    which it must assume the lead is lost (the lease, less a margin, from when it asked)."""

    holder: str
    term: int
    seconds: float
    until: float = 0.0

    @property
    def margin(self) -> float:
        return max(2.0, self.seconds / 5)

    def held(self) -> bool:
        """Whether this holder may still act as the leader."""
        return _boot_clock() < self.until

    def renewed(self, asked_at: float) -> None:
        self.until = asked_at + self.seconds - self.margin


@dataclass(frozen=True)
class Lead:
    """The row as an operator sees it."""

    holder: str
    term: int
    expires_at: datetime
    renewed_at: datetime | None
    last_tick_at: datetime | None
    last_error: str
    last_error_at: datetime | None

    def live(self, now: datetime) -> bool:
        return bool(self.holder) and self.expires_at > now


def _wait_briefly(session: Session) -> None:
    """On PostgreSQL, wait at most a few seconds for the row's lock (a leader frozen in
    the middle of a renewal holds it): an error to retry, not a follower stuck behind."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))


def _row(session: Session) -> Leadership:
    row = session.get(Leadership, NAME)
    if row is None:
        session.add(Leadership(name=NAME, holder="", term=0, expires_at=clock.now()))
        try:
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()  # another daemon made it first
        row = session.get(Leadership, NAME)
        assert row is not None
    return row


def claim(session: Session, holder: str, seconds: float) -> Lease | None:
    """Take the lead for ``holder`` if nobody holds it (free, run out, or its holder's
    process on this machine is gone); None if another does. Commits.

    The change of holder is one compare-and-set on the term, so of two daemons that try
    at once exactly one wins."""
    asked = _boot_clock()
    row = _row(session)
    _wait_briefly(session)
    now = clock.now()
    if row.holder == holder and row.expires_at > now:
        lease = Lease(holder, row.term, seconds)
        return lease if renew(session, lease) else None
    if row.holder and row.expires_at > now and not stopped(row.holder):
        session.rollback()
        return None
    term = row.term + 1
    # Taken only if it is still as seen: free or run out (or its holder gone), and no
    # renewal came in between; of two daemons that try at once exactly one wins.
    free = sa.or_(col(Leadership.holder) == "", col(Leadership.expires_at) <= now)
    if row.holder and stopped(row.holder):
        free = sa.or_(free, col(Leadership.holder) == row.holder)
    taken = rowcount(
        session.execute(
            sa.update(Leadership)
            .where(col(Leadership.name) == NAME, col(Leadership.term) == row.term, free)
            .values(
                holder=holder,
                term=term,
                expires_at=now + timedelta(seconds=seconds),
                renewed_at=now,
            )
        )
    )
    session.commit()
    if not taken:
        return None
    lease = Lease(holder, term, seconds)
    lease.renewed(asked)
    return lease


def renew(session: Session, lease: Lease) -> bool:
    """Extend the lease; False if another daemon holds the lead now (a newer term).
    Commits. (A holder whose lease lapsed by its own clock stops acting whatever this
    says: see :meth:`Lease.held`.)"""
    asked = _boot_clock()
    _wait_briefly(session)
    now = clock.now()
    extended = rowcount(
        session.execute(
            sa.update(Leadership)
            .where(
                col(Leadership.name) == NAME,
                col(Leadership.holder) == lease.holder,
                col(Leadership.term) == lease.term,
            )
            .values(expires_at=now + timedelta(seconds=lease.seconds), renewed_at=now)
        )
    )
    session.commit()
    if extended:
        lease.renewed(asked)
    return bool(extended)


def release(session: Session, lease: Lease) -> None:
    """Give the lead up at once (a clean stop): a follower need not wait for the lease."""
    session.execute(
        sa.update(Leadership)
        .where(
            col(Leadership.name) == NAME,
            col(Leadership.holder) == lease.holder,
            col(Leadership.term) == lease.term,
        )
        .values(holder="", expires_at=clock.now())
    )
    session.commit()
    lease.until = 0.0


def note(session: Session, lease: Lease, *, ticked: bool = False, error: str | None = None) -> None:
    """Record a tick or the last error of the leader (for `mailer status` and /readyz)."""
    values: dict[str, object] = {}
    now = clock.now()
    if ticked:
        values["last_tick_at"] = now
    if error is not None:
        values["last_error"] = error[:500]
        values["last_error_at"] = now
    if not values:
        return
    session.execute(
        sa.update(Leadership)
        .where(
            col(Leadership.name) == NAME,
            col(Leadership.holder) == lease.holder,
            col(Leadership.term) == lease.term,
        )
        .values(**values)
    )
    session.commit()


def current(session: Session) -> Lead | None:
    """The leadership row, if any daemon ever led."""
    row = session.exec(select(Leadership).where(col(Leadership.name) == NAME)).first()
    if row is None:
        return None
    return Lead(
        holder=row.holder,
        term=row.term,
        expires_at=row.expires_at,
        renewed_at=row.renewed_at,
        last_tick_at=row.last_tick_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
    )
