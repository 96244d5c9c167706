"""Logging in and out of the console (the only staff pages without a login)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from mailer import (
    sessions,
    staff,
)
from mailer.web.pages import (
    LoginRequired,
    check_csrf,
    client_hash,
    context,
    current_session,
    log_in,
    log_out,
    page,
    redirect,
    staff_of,
)
from mailer.web.staff.common import CSRF, DB, audit_action

router = APIRouter(prefix="/staff")  # no login needed: see staff/__init__.py


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/staff") -> Response:
    return page(request, "staff/login.html", {"next": next, "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: DB,
    csrf: CSRF = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/staff",
) -> Response:
    check_csrf(request, csrf)
    try:
        account = staff.authenticate(
            session,
            email,
            password,
            context(request).config.settings.staff,
            client=client_hash(request),
        )
    except staff.LoginRefused as exc:
        return page(request, "staff/login.html", {"next": next, "error": str(exc)}, status=401)
    log_in(request, session, account)
    audit_action(session, account, "staff:login")
    session.commit()
    return redirect(next if next.startswith("/staff") and "//" not in next else "/staff")


@router.post("/logout")
def logout(request: Request, session: DB, csrf: CSRF = "") -> Response:
    try:
        staff_of(request, session)
    except LoginRequired:
        return redirect("/staff/login")  # already ended: nothing to do
    check_csrf(request, csrf)
    row = current_session(request)
    sessions.end(session, row, sessions.Why.LOGOUT)
    session.commit()
    log_out(request)
    return redirect("/staff/login")
