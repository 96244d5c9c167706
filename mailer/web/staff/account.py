"""Your account (password, sessions) and an admin's view of everyone's sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from mailer import (
    issues,
    sessions,
    staff,
)
from mailer.db import get_by_id
from mailer.models import (
    StaffAccount,
    StaffRole,
    StaffSession,
)
from mailer.web.pages import (
    RowId,
    client_hash,
    context,
    current_session,
    flash,
    log_out,
    page,
    redirect,
)
from mailer.web.staff.common import ADMIN, DB, Staff, audit_action, local_zone

router = APIRouter()


def _account_page(
    request: Request, session: Session, account: StaffAccount, error: str | None = None
) -> Response:
    web = context(request).config.settings.web
    everyone = sessions.live(session, web)
    mine = [row for row, _ in everyone if row.staff_id == account.id]
    return page(
        request,
        "staff/account.html",
        {
            "mine": mine,
            "everyone": everyone if account.role is StaffRole.ADMIN else [],
            "current": current_session(request).id,
            "error": error,
            "minimum": staff.MIN_PASSWORD,
            "zone": local_zone(request),
        },
        status=422 if error else 200,
        staff=account,
    )


@router.get("/account", response_class=HTMLResponse)
def account_view(request: Request, account: Staff, session: DB) -> Response:
    return _account_page(request, session, account)


@router.post("/account/password", response_class=HTMLResponse)
def account_password(
    request: Request,
    account: Staff,
    session: DB,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    repeat: Annotated[str, Form()] = "",
) -> Response:
    if new != repeat:
        return _account_page(request, session, account, "the two new passwords differ")
    try:
        staff.change_password(
            session,
            account.email,
            current,
            new,
            context(request).config.settings.staff,
            client=client_hash(request),
            keep=current_session(request).id,
        )
    except (staff.StaffError, staff.LoginRefused) as exc:
        session.rollback()
        return _account_page(request, session, account, str(exc))
    audit_action(session, account, "staff:password", account.email, "changed in the console")
    session.commit()
    flash(request, "Password changed: your other sessions have ended.")
    return redirect("/staff/account")


@router.post("/account/end-others")
def account_end_others(request: Request, account: Staff, session: DB) -> Response:
    assert account.id is not None
    ended = sessions.end_for(
        session, account.id, sessions.Why.LOGOUT, keep=current_session(request).id
    )
    session.commit()
    flash(request, f"Ended {ended} other session(s) of yours.")
    return redirect("/staff/account")


@router.post("/sessions/end-all", dependencies=[ADMIN])
def sessions_end_all(request: Request, account: Staff, session: DB) -> Response:
    """An admin logs everyone out, themselves included (a suspected leak)."""
    ended = sessions.end_all(session)
    audit_action(session, account, "staff:end-all-sessions", detail=f"{ended} sessions")
    session.commit()
    log_out(request)
    return redirect("/staff/login")


@router.post("/sessions/{session_id}/end")
def session_end(request: Request, account: Staff, session_id: RowId, session: DB) -> Response:
    row = get_by_id(session, StaffSession, session_id)
    if row is None or (row.staff_id != account.id and account.role is not StaffRole.ADMIN):
        raise issues.IssueError(f"there is no session {session_id}")
    sessions.end(
        session,
        row,
        sessions.Why.ENDED_BY_ADMIN if row.staff_id != account.id else sessions.Why.LOGOUT,
    )
    audit_action(session, account, "staff:end-session", f"session {session_id}")
    session.commit()
    flash(request, "Session ended.")
    return redirect("/staff/account")
