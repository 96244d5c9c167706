"""Staff accounts: roles, argon2 password hashes, and logins slowed after failures.

Errors::

    StaffError     an account cannot be created or changed
    LoginRefused   the login did not succeed (one message, whatever the reason)
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Sequence
from datetime import timedelta
from functools import cache

import sqlalchemy as sa
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from mailer import clock, sessions
from mailer.contacts import ContactFieldError, normalise_email
from mailer.models import LoginThrottle, StaffAccount, StaffRole
from mailer.settings import StaffSettings

MIN_PASSWORD = 12
# The test suite (and only it) sets MAILER_TEST_CHEAP_HASHES: argon2's cheapest
# parameters, so thousands of logins stay fast. A hash made so is upgraded at the next
# login of a process without it (check_needs_rehash).
_hasher = (
    PasswordHasher.from_parameters(profiles.CHEAPEST)
    if os.environ.get("MAILER_TEST_CHEAP_HASHES") == "1"
    else PasswordHasher()
)


# At most this many argon2 verifications at once (each takes 64 MiB): a flood of logins
# queues here rather than exhausting memory.
_verifying = threading.BoundedSemaphore(4)


def prepare() -> None:
    """Make the dummy hash now (a server calls it at start), so the first refused login
    does the same work as every other."""
    _dummy()


@cache
def _dummy() -> str:
    """Verified against when the email is unknown, so both cases take the same time (made
    on first use: hashing at import would slow every command's start)."""
    return _hasher.hash(secrets.token_hex(16))


class StaffError(Exception):
    """A staff account cannot be created or changed."""


class LoginRefused(Exception):
    """The login did not succeed; the message never says which part was wrong."""


def can_approve(role: StaffRole) -> bool:
    """Approvers and admins approve; editors compose."""
    return role in (StaffRole.APPROVER, StaffRole.ADMIN)


COMMAND_LINE = "(command line)"


def operator(user: str) -> str:
    """How the operating-system user at the command line is named: 'jo (command line)'."""
    return f"{user} {COMMAND_LINE}"


def identify(session: Session, name: str) -> tuple[str, StaffAccount | None]:
    """The person a name stands for when editing or approving, in one form: a staff
    account (by its address, normalised as stored, so case, spaces or an international
    domain never make one person two) or the operating-system user at the command line
    (:func:`operator`). Anything else names nobody.

    :raises StaffError: the name is empty, or an address with no staff account, or
        neither an address nor the command line's user.
    """
    text = name.strip()
    if not text:
        raise StaffError("say who you are (--by EMAIL, your staff account)")
    if text.endswith(f" {COMMAND_LINE}") and "@" not in text:
        return text, None
    try:
        address = normalise_email(text)
    except ContactFieldError:
        raise StaffError(
            f"{text!r} is not a staff account's address: name yourself by yours "
            "(`mailer staff list`), or leave --by out to act as the operating-system user"
        ) from None
    account = session.exec(select(StaffAccount).where(col(StaffAccount.email) == address)).first()
    if account is None:
        raise StaffError(
            f"{address} has no staff account (`mailer staff add {address} --role ...`): "
            "edits and approvals are made by named staff"
        )
    return address, account


def generate_password() -> str:
    """A strong random password to hand to a new member of staff."""
    return secrets.token_urlsafe(15)


def add(session: Session, email: str, role: StaffRole, password: str) -> StaffAccount:
    """Create an account.

    :raises StaffError: the address is invalid or taken, or the password too short.
    """
    try:
        address = normalise_email(email)
    except ContactFieldError as exc:
        raise StaffError(str(exc)) from None
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    if session.exec(select(StaffAccount).where(col(StaffAccount.email) == address)).first():
        raise StaffError(f"{address} already has an account")
    account = StaffAccount(email=address, role=role, password_hash=_hasher.hash(password))
    session.add(account)
    session.flush()
    return account


def find(session: Session, email: str) -> StaffAccount:
    """The account at ``email``.

    :raises StaffError: there is none.
    """
    account = session.exec(
        select(StaffAccount).where(col(StaffAccount.email) == email.strip().lower())
    ).first()
    if account is None:
        raise StaffError(f"there is no account for {email}")
    return account


def _unlock(account: StaffAccount) -> None:
    account.failed_logins = 0
    account.locked_until = None
    account.last_failed_at = None


def set_password(session: Session, email: str, password: str) -> StaffAccount:
    """Give an account a new password, unlock it and end its sessions.

    :raises StaffError: there is no such account, or the password is too short.
    """
    account = find(session, email)
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    account.password_hash = _hasher.hash(password)
    _unlock(account)
    session.flush()
    assert account.id is not None
    sessions.end_for(session, account.id, sessions.Why.CREDENTIALS)
    return account


ROLES = {
    StaffRole.EDITOR: "composes issues, keeps the events diary and contacts, sends tests",
    StaffRole.APPROVER: "also approves, schedules and sends issues, and changes the calendar",
    StaffRole.ADMIN: "also manages staff accounts and people's personal data (export, erase)",
}


def _keep_an_admin(session: Session, account: StaffAccount, doing: str) -> None:
    """:raises StaffError: ``account`` is the only enabled admin (no one could manage the
    accounts afterwards but the command line)."""
    if account.role is not StaffRole.ADMIN or account.disabled_at is not None:
        return
    others = session.exec(
        select(StaffAccount.id).where(
            col(StaffAccount.role) == StaffRole.ADMIN,
            col(StaffAccount.disabled_at).is_(None),
            col(StaffAccount.id) != account.id,
        )
    ).first()
    if others is None:
        raise StaffError(
            f"{account.email} is the last admin: cannot {doing}; make another account "
            "admin first (`mailer staff role EMAIL admin`)"
        )


def set_role(session: Session, email: str, role: StaffRole) -> StaffAccount:
    """Give an account another role; its sessions end (the next login has the new role).

    :raises StaffError: there is no such account, or it is the last admin and would not be.
    """
    account = find(session, email)
    if role is not StaffRole.ADMIN:
        _keep_an_admin(session, account, f"make it an {role}")
    if account.role is not role:
        account.role = role
        session.flush()
        assert account.id is not None
        sessions.end_for(session, account.id, sessions.Why.ROLE)
    return account


def set_disabled(session: Session, email: str, disabled: bool) -> StaffAccount:
    """Disable an account (it cannot log in, its sessions end; its history stays) or
    enable it again.

    :raises StaffError: there is no such account, or it is the last admin (disabling).
    """
    account = find(session, email)
    if disabled:
        _keep_an_admin(session, account, "disable it")
    account.disabled_at = clock.now() if disabled else None
    if not disabled:
        _unlock(account)
    session.flush()
    assert account.id is not None
    if disabled:
        sessions.end_for(session, account.id, sessions.Why.DISABLED)
    return account


def unlock(session: Session, email: str) -> StaffAccount:
    """Clear an account's failed logins, so its next attempt need not wait.

    :raises StaffError: there is no such account.
    """
    account = find(session, email)
    _unlock(account)
    session.flush()
    return account


REFUSED = (
    "the email address or the password is wrong, or there were too many attempts: after "
    "{after} failed logins each attempt has to wait longer, up to {minutes:g} minutes"
)
PASSWORD_MAX = 1024
STALE = sessions.FORGET_FAILURES


def wait_after(failures: int, settings: StaffSettings) -> timedelta:
    """How long the next attempt waits after ``failures`` attempts: nothing below
    ``lockout_after``, then 1 s doubling each time, at most ``lockout_minutes``."""
    if failures < settings.lockout_after:
        return timedelta(0)
    seconds = 2.0 ** min(failures - settings.lockout_after, 40)
    return timedelta(seconds=min(seconds, settings.lockout_minutes * 60))


def _reserve_client(session: Session, client: str, settings: StaffSettings) -> bool:
    """Count one attempt from ``client``; False if it must wait (nothing counted).

    One statement counts it, so attempts in parallel each see their own number, and the
    row stays locked until the commit that sets the wait."""
    now = clock.now()
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(ip_hash=client, failures=1, last_failed_at=now)
        .on_conflict_do_update(
            index_elements=["ip_hash"],
            set_={
                "failures": sa.case(
                    (table.c.last_failed_at < now - STALE, 1), else_=table.c.failures + 1
                ),
                "last_failed_at": now,
            },
            where=sa.or_(table.c.blocked_until.is_(None), table.c.blocked_until <= now),
        )
        .returning(table.c.failures)
    )
    counted = session.execute(statement).scalar_one_or_none()
    if counted is None:
        return False
    wait = wait_after(counted, settings)
    if wait:
        session.execute(
            table.update().where(table.c.ip_hash == client).values(blocked_until=now + wait)
        )
    return True


def _reserve_account(session: Session, address: str, settings: StaffSettings) -> bool:
    """Count one attempt against the account at ``address``; False if it must wait, or if
    there is no such account (the same statement runs either way)."""
    now = clock.now()
    accounts = StaffAccount.__table__  # type: ignore[attr-defined]
    counted = session.execute(
        sa.update(accounts)
        .where(
            accounts.c.email == address,
            sa.or_(accounts.c.locked_until.is_(None), accounts.c.locked_until <= now),
        )
        .values(
            failed_logins=sa.case(
                (
                    sa.or_(
                        accounts.c.last_failed_at.is_(None),
                        accounts.c.last_failed_at < now - STALE,
                    ),
                    1,
                ),
                else_=accounts.c.failed_logins + 1,
            ),
            last_failed_at=now,
        )
        .returning(accounts.c.failed_logins)
    ).scalar_one_or_none()
    if counted is None:
        return False
    wait = wait_after(counted, settings)
    if wait:
        session.execute(
            sa.update(accounts).where(accounts.c.email == address).values(locked_until=now + wait)
        )
    return True


def authenticate(
    session: Session, email: str, password: str, settings: StaffSettings, *, client: str
) -> StaffAccount:
    """The account if the password is right. Commits.

    Every attempt is counted before its password is checked, for the client address
    (``client``, a keyed hash) and for the account, each in one atomic statement: past
    ``lockout_after`` each further attempt waits longer (:func:`wait_after`), and one that
    comes too soon is refused without its password being checked. Attempts from an
    address the account logged in from before (:func:`sessions.known_client`) do not count
    against the account, so an outsider's guesses slow the outsider, not the owner. A
    success takes back only its own count.

    A wrong password, an unknown or disabled account and an account that must wait get
    the same refusal after the same work (one argon2 verification, against a dummy hash
    when there is nothing to check). A client that must wait is refused at once: that
    depends on its own attempts only, so it tells nothing about any account.

    :raises LoginRefused: with one message for every case.
    """
    refused = LoginRefused(
        REFUSED.format(after=settings.lockout_after, minutes=settings.lockout_minutes)
    )
    address = email.strip().lower().replace("\x00", "")[:320]  # NUL: no account has one
    # The first statement writes, so the whole count is one write transaction (SQLite).
    if not _reserve_client(session, client, settings):
        # This client must wait: its own history, which says nothing about accounts, so
        # it is refused at once (no argon2 work to be had by hammering).
        session.commit()
        raise refused
    account = session.exec(select(StaffAccount).where(col(StaffAccount.email) == address)).first()
    usable = account is not None and account.disabled_at is None
    known = (
        account is not None and usable and sessions.known_client(session, account.id or 0, client)
    )
    allowed = True
    if not known:
        # Runs for unknown addresses too (it matches no row): the same work every time.
        allowed = _reserve_account(session, address, settings)
    session.commit()
    check = account is not None and usable and allowed and len(password) <= PASSWORD_MAX
    try:
        with _verifying:
            _hasher.verify(
                account.password_hash if check and account is not None else _dummy(),
                password[:PASSWORD_MAX],
            )
    except (VerificationError, InvalidHashError):
        check = False
    if not check or account is None:
        raise refused
    # A success takes back its own count (and the wait it set), no one else's: logging in
    # to one account does not wipe the failures of an address against another.
    throttles = LoginThrottle.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(throttles)
        .where(throttles.c.ip_hash == client)
        .values(
            failures=sa.case((throttles.c.failures > 0, throttles.c.failures - 1), else_=0),
            blocked_until=None,
        )
    )
    session.refresh(account)
    if not known:
        account.failed_logins = max(account.failed_logins - 1, 0)
        account.locked_until = None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    account.last_login_at = clock.now()
    session.commit()
    return account


def change_password(
    session: Session,
    email: str,
    current: str,
    new: str,
    settings: StaffSettings,
    *,
    client: str,
    keep: int | None = None,
) -> StaffAccount:
    """A member of staff changes their own password, proving the current one (counted
    like a login, so it cannot be guessed here faster than at the login); every other
    session of theirs ends (``keep``: the one they are using). Commits.

    :raises LoginRefused: the current password is wrong (or attempts must wait).
    :raises StaffError: the new password is too short.
    """
    if len(new) < MIN_PASSWORD:
        raise StaffError(f"the new password must have at least {MIN_PASSWORD} characters")
    account = authenticate(session, email, current, settings, client=client)
    account.password_hash = _hasher.hash(new)
    session.flush()
    assert account.id is not None
    sessions.end_for(session, account.id, sessions.Why.CREDENTIALS, keep=keep)
    session.commit()
    return account


def listing(session: Session) -> Sequence[StaffAccount]:
    """Every account, by email."""
    return session.exec(select(StaffAccount).order_by(col(StaffAccount.email))).all()
