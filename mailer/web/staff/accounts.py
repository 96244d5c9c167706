"""Staff accounts in the console (admins only): add, change role, reset a password, disable,
enable, end sessions; the same functions and audit entries as `mailer staff`."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from mailer import sessions, staff
from mailer.db import get_by_id
from mailer.models import StaffAccount, StaffRole
from mailer.web.pages import (
    RowId,
    context,
    current_session,
    flash,
    log_out,
    page,
    redirect,
)
from mailer.web.staff.common import ADMIN, DB, Staff, audit_action, local_zone, not_found

router = APIRouter(dependencies=[ADMIN])  # every page here is an admin's


def _accounts_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    shown: tuple[str, str, str] | None = None,
) -> Response:
    """The list, with ``errors`` by field ("add", "role-7", "disable-7" ...) and, once,
    a ``shown`` password: (address, password, what happened)."""
    live = Counter(
        row.staff_id for row, _ in sessions.live(session, context(request).config.settings.web)
    )
    return page(
        request,
        "staff/accounts.html",
        {
            "accounts": staff.listing(session),
            "live": live,
            "roles": staff.ROLES,
            "errors": errors or {},
            "typed": typed or {},
            "shown": shown,
            "zone": local_zone(request),
        },
        status=422 if errors else 200,
        staff=account,
    )


def _target(
    request: Request, session: Session, account: StaffAccount, account_id: int
) -> StaffAccount | Response:
    found = get_by_id(session, StaffAccount, account_id)
    if found is None:
        return not_found(request, account, f"there is no staff account {account_id}")
    return found


def _signed_out(request: Request, message: str) -> Response:
    """The admin changed their own account so that their sessions ended: to the login."""
    log_out(request)
    flash(request, message)
    return redirect("/staff/login")


@router.get("/accounts", response_class=HTMLResponse)
def accounts_view(request: Request, account: Staff, session: DB) -> Response:
    return _accounts_page(request, session, account)


@router.post("/accounts", response_class=HTMLResponse)
def accounts_add(
    request: Request,
    account: Staff,
    session: DB,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[StaffRole, Form()] = StaffRole.EDITOR,
) -> Response:
    password = staff.generate_password()
    try:
        added = staff.add(session, email, role, password)
    except staff.StaffError as exc:
        session.rollback()
        typed = {"email": email, "role": role.value}
        return _accounts_page(request, session, account, errors={"add": str(exc)}, typed=typed)
    audit_action(session, account, "staff:add", added.email, added.role)
    session.commit()
    return _accounts_page(
        request,
        session,
        account,
        shown=(added.email, password, f"Added {added.email} ({added.role})."),
    )


@router.post("/accounts/{account_id}/role", response_class=HTMLResponse)
def accounts_role(
    request: Request,
    account: Staff,
    session: DB,
    account_id: RowId,
    role: Annotated[StaffRole, Form()],
) -> Response:
    target = _target(request, session, account, account_id)
    if isinstance(target, Response):
        return target
    was = target.role
    try:
        changed = staff.set_role(session, target.email, role)
    except staff.StaffError as exc:
        session.rollback()
        return _accounts_page(request, session, account, errors={f"role-{account_id}": str(exc)})
    audit_action(session, account, "staff:role", changed.email, f"{was} -> {changed.role}")
    session.commit()
    said = f"{changed.email} is now {changed.role}; its sessions have ended."
    if changed.id == account.id and was is not changed.role:
        return _signed_out(request, said)
    flash(request, said if was is not changed.role else f"{changed.email} was already {was}.")
    return redirect(f"/staff/accounts#account-{account_id}")


@router.post("/accounts/{account_id}/password", response_class=HTMLResponse)
def accounts_password(request: Request, account: Staff, session: DB, account_id: RowId) -> Response:
    target = _target(request, session, account, account_id)
    if isinstance(target, Response):
        return target
    if target.id == account.id:
        return _accounts_page(
            request,
            session,
            account,
            errors={
                f"password-{account_id}": "change your own password under Account: it asks "
                "for the current one"
            },
        )
    password = staff.generate_password()
    staff.set_password(session, target.email, password)
    audit_action(session, account, "staff:password", target.email)
    session.commit()
    said = f"New password for {target.email}: its sessions have ended and it is unlocked."
    return _accounts_page(request, session, account, shown=(target.email, password, said))


def _standing(
    request: Request, account: StaffAccount, session: Session, account_id: int, disabled: bool
) -> Response:
    target = _target(request, session, account, account_id)
    if isinstance(target, Response):
        return target
    try:
        changed = staff.set_disabled(session, target.email, disabled)
    except staff.StaffError as exc:
        session.rollback()
        return _accounts_page(request, session, account, errors={f"disable-{account_id}": str(exc)})
    audit_action(session, account, "staff:disable" if disabled else "staff:enable", changed.email)
    session.commit()
    if disabled:
        said = f"Disabled {changed.email}: it cannot log in; its sessions have ended."
        if changed.id == account.id:
            return _signed_out(request, said)
    else:
        said = f"Enabled {changed.email}: it can log in again."
    flash(request, said)
    return redirect(f"/staff/accounts#account-{account_id}")


@router.post("/accounts/{account_id}/disable", response_class=HTMLResponse)
def accounts_disable(request: Request, account: Staff, session: DB, account_id: RowId) -> Response:
    return _standing(request, account, session, account_id, True)


@router.post("/accounts/{account_id}/enable", response_class=HTMLResponse)
def accounts_enable(request: Request, account: Staff, session: DB, account_id: RowId) -> Response:
    return _standing(request, account, session, account_id, False)


@router.post("/accounts/{account_id}/end-sessions", response_class=HTMLResponse)
def accounts_end_sessions(
    request: Request, account: Staff, session: DB, account_id: RowId
) -> Response:
    """End an account's sessions (a lost laptop); your own but the one you are using."""
    target = _target(request, session, account, account_id)
    if isinstance(target, Response):
        return target
    assert target.id is not None
    keep = current_session(request).id if target.id == account.id else None
    ended = sessions.end_for(session, target.id, sessions.Why.ENDED_BY_ADMIN, keep=keep)
    audit_action(session, account, "staff:end-sessions", target.email, f"{ended} sessions")
    session.commit()
    flash(request, f"Ended {ended} session(s) of {target.email}.")
    return redirect(f"/staff/accounts#account-{account_id}")
