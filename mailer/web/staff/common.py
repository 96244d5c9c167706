"""What every console page shares: the logged-in account, roles and CSRF as dependencies."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlmodel import Session

from mailer import audit
from mailer.models import StaffAccount, StaffRole
from mailer.web.pages import check_csrf, context, db, page, require_role, staff_of

DB = Annotated[Session, Depends(db)]
CSRF = Annotated[str, Form()]


def signed_in(request: Request, session: DB) -> StaffAccount:
    """The logged-in member of staff (a router-level dependency of every console page).

    :raises LoginRequired: nobody is logged in: the login page, then back.
    """
    return staff_of(request, session)


Staff = Annotated[StaffAccount, Depends(signed_in)]


async def csrf_checked(request: Request, account: Staff) -> None:
    """Every console form carries the session's CSRF token (a router-level dependency).

    :raises Forbidden: a form without it.
    """
    if request.method != "POST":
        return
    # Kept: the route reads it again. An issue's editor has some ten fields per item.
    form = await request.form(max_files=1, max_fields=2000)
    token = form.get("csrf")
    check_csrf(request, token if isinstance(token, str) else None)


class RoleRequired:
    """A route's dependency: the account must have one of ``roles``."""

    def __init__(self, *roles: StaffRole) -> None:
        self.roles = roles

    def __call__(self, account: Staff) -> None:
        require_role(account, *self.roles)


APPROVER = Depends(RoleRequired(StaffRole.APPROVER, StaffRole.ADMIN))
ADMIN = Depends(RoleRequired(StaffRole.ADMIN))


def audit_action(
    session: Session, account: StaffAccount, action: str, target: str = "", detail: str = ""
) -> None:
    """Record a staff action, committed with the change it describes."""
    audit.record(session, account.email, action, target, detail)


def local_zone(request: Request) -> ZoneInfo:
    return context(request).config.settings.calendar.zone


def not_found(request: Request, account: StaffAccount, message: str) -> Response:
    """A 404 page that keeps the console's menu: ``message`` says what is not there."""
    return page(
        request,
        "message.html",
        {"title": "Not found", "message": message},
        status=404,
        staff=account,
    )
