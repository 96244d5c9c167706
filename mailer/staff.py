"""Staff accounts: roles, argon2 password hashes, and lockout after failed logins.

Errors::

    StaffError     an account cannot be created or changed
    LoginRefused   the email or password is wrong, or the account is locked
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from contextlib import suppress
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from mailer import clock
from mailer.contacts import ContactFieldError, normalise_email
from mailer.models import StaffAccount, StaffRole
from mailer.settings import StaffSettings

MIN_PASSWORD = 12
_hasher = PasswordHasher()


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


def set_password(session: Session, email: str, password: str) -> StaffAccount:
    """Give an account a new password and unlock it.

    :raises StaffError: there is no such account, or the password is too short.
    """
    account = session.exec(
        select(StaffAccount).where(col(StaffAccount.email) == email.strip().lower())
    ).first()
    if account is None:
        raise StaffError(f"there is no account for {email}")
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    account.password_hash = _hasher.hash(password)
    account.failed_logins = 0
    account.locked_until = None
    session.flush()
    return account


def authenticate(
    session: Session, email: str, password: str, settings: StaffSettings
) -> StaffAccount:
    """The account if the password is right; failures count towards a lockout. Commits.

    :raises LoginRefused: wrong email or password (one message for both), or locked.
    """
    now = clock.now()
    account = session.exec(
        select(StaffAccount).where(col(StaffAccount.email) == email.strip().lower())
    ).first()
    if account is None:
        with suppress(VerificationError):
            _hasher.verify(_dummy(), password)
        raise LoginRefused("the email address or the password is wrong")
    if account.locked_until is not None and account.locked_until > now:
        raise LoginRefused("this account is locked after too many failed logins; try again later")
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        account.failed_logins += 1
        if account.failed_logins >= settings.lockout_after:
            account.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            account.failed_logins = 0
        session.commit()
        raise LoginRefused("the email address or the password is wrong") from None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    session.commit()
    return account


def listing(session: Session) -> Sequence[StaffAccount]:
    """Every account, by email."""
    return session.exec(select(StaffAccount).order_by(col(StaffAccount.email))).all()
