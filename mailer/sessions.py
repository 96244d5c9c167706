"""Staff login sessions: kept on the server, ended at once, by idle time or by age.

The browser holds only a random token; the table holds its SHA-256, so a copy of the
database opens no console. A session ends on logout, when its account's password, role
or standing changes, when an admin ends every session, after ``[web] session_hours``
without a request, and ``[web] session_days`` after the login, whichever comes first.
Ended rows are kept for :data:`REMEMBER` as the addresses an account logged in from
(:func:`known_client`), then deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clock
from mailer.db import rowcount
from mailer.models import LoginThrottle, StaffAccount, StaffSession
from mailer.settings import WebSettings

REMEMBER = timedelta(days=30)
FORGET_FAILURES = timedelta(days=1)  # failures older than this no longer count
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
USER_AGENT_MAX = 300


class Why:
    """Why a session ended, as kept in ``ended_why``."""

    LOGOUT = "logout"
    NEW_LOGIN = "new login"
    CREDENTIALS = "password changed"
    ROLE = "role changed"
    DISABLED = "account disabled"
    ENDED_BY_ADMIN = "ended by an admin"
    IDLE = "idle"
    EXPIRED = "lifetime over"


@dataclass(frozen=True)
class Current:
    """A live session and the account it logs in."""

    row: StaffSession
    account: StaffAccount


def client_hash(key: bytes, address: str) -> str:
    """A client address as kept: keyed, so the table does not give addresses away."""
    return hmac.new(key, f"staff-client:{address}".encode(), hashlib.sha256).hexdigest()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def start(
    session: Session, account: StaffAccount, *, client: str, user_agent: str
) -> tuple[StaffSession, str]:
    """A new session for ``account``; returns it and the token for the cookie (the only
    copy). Old rows of the account beyond :data:`REMEMBER` are deleted. Flushes."""
    assert account.id is not None
    now = clock.now()
    session.execute(
        sa.delete(StaffSession).where(
            col(StaffSession.staff_id) == account.id,
            col(StaffSession.last_seen_at) < now - REMEMBER,
        )
    )
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        token_hash=_digest(token),
        staff_id=account.id,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        last_seen_at=now,
        ip_hash=client,
        user_agent=user_agent[:USER_AGENT_MAX],
    )
    session.add(row)
    session.flush()
    return row, token


def _ending(row: StaffSession, settings: WebSettings, now: datetime) -> str | None:
    if row.last_seen_at + timedelta(hours=settings.session_hours) <= now:
        return Why.IDLE
    if row.created_at + timedelta(days=settings.session_days) <= now:
        return Why.EXPIRED
    return None


def resume(session: Session, token: str, settings: WebSettings) -> Current | None:
    """The live session a cookie's token names, or None (unknown, ended, idle too long,
    too old, or its account disabled). Notes the request as activity. Commits when it
    writes."""
    if not token or len(token) > 100:
        return None
    row = session.exec(
        select(StaffSession).where(
            col(StaffSession.token_hash) == _digest(token), col(StaffSession.ended_at).is_(None)
        )
    ).first()
    if row is None:
        return None
    account = session.get(StaffAccount, row.staff_id)
    now = clock.now()
    why = Why.DISABLED if account is None or account.disabled_at else _ending(row, settings, now)
    if why is not None:
        end(session, row, why)
        session.commit()
        return None
    assert account is not None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return Current(row, account)


def end(session: Session, row: StaffSession, why: str) -> None:
    """End one session (logout). Flushes."""
    if row.ended_at is None:
        row.ended_at = clock.now()
        row.ended_why = why
        session.flush()


def end_for(session: Session, staff_id: int, why: str, *, keep: int | None = None) -> int:
    """End every live session of one account (except ``keep``); returns how many."""
    query = sa.update(StaffSession).where(
        col(StaffSession.staff_id) == staff_id, col(StaffSession.ended_at).is_(None)
    )
    if keep is not None:
        query = query.where(col(StaffSession.id) != keep)
    return rowcount(session.execute(query.values(ended_at=clock.now(), ended_why=why)))


def end_all(session: Session, *, keep: int | None = None) -> int:
    """End every live session of every account (an admin's "log everyone out")."""
    query = sa.update(StaffSession).where(col(StaffSession.ended_at).is_(None))
    if keep is not None:
        query = query.where(col(StaffSession.id) != keep)
    return rowcount(
        session.execute(query.values(ended_at=clock.now(), ended_why=Why.ENDED_BY_ADMIN))
    )


def live(session: Session, settings: WebSettings) -> Sequence[tuple[StaffSession, str]]:
    """Sessions not ended and not yet idle or too old, newest first, with their account's
    address."""
    now = clock.now()
    rows = session.exec(
        select(StaffSession, StaffAccount.email)
        .join(StaffAccount, col(StaffAccount.id) == col(StaffSession.staff_id))
        .where(col(StaffSession.ended_at).is_(None))
        .order_by(col(StaffSession.last_seen_at).desc())
    ).all()
    return [(row, email) for row, email in rows if _ending(row, settings, now) is None]


def known_client(session: Session, staff_id: int, client: str) -> bool:
    """Whether the account logged in from this client address in the last :data:`REMEMBER`
    (its owner, most likely: failures from there do not hold the account back)."""
    since = clock.now() - REMEMBER
    found = session.execute(
        sa.select(col(StaffSession.id))
        .where(
            col(StaffSession.staff_id) == staff_id,
            col(StaffSession.ip_hash) == client,
            col(StaffSession.created_at) > since,
        )
        .limit(1)
    ).first()
    return found is not None


def forget(session: Session) -> int:
    """Delete what logins leave behind once it has served: sessions last seen more than
    :data:`REMEMBER` ago, and per-address counts of failures a day old (the daemon's daily
    housekeeping). Commits; returns the rows deleted."""
    now = clock.now()
    ended = rowcount(
        session.execute(
            sa.delete(StaffSession).where(col(StaffSession.last_seen_at) < now - REMEMBER)
        )
    )
    stale = rowcount(
        session.execute(
            sa.delete(LoginThrottle).where(
                col(LoginThrottle.last_failed_at) < now - FORGET_FAILURES,
                sa.or_(
                    col(LoginThrottle.blocked_until).is_(None),
                    col(LoginThrottle.blocked_until) < now,
                ),
            )
        )
    )
    session.commit()
    return ended + stale
