"""The staff console, one module per resource; every page but the login's is behind the
login and, for forms, the CSRF check (router-level dependencies, not a call per page)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from mailer.calendar import CalendarError
from mailer.issues import IssueError
from mailer.web.pages import page, visitor
from mailer.web.staff import (
    account,
    accounts,
    calendar,
    contacts,
    contributions,
    dashboard,
    events,
    issues,
    login,
    logs,
    mailbox,
    media,
    reports,
)
from mailer.web.staff.common import csrf_checked, signed_in

GUARDED = [Depends(signed_in), Depends(csrf_checked)]

public = login.router  # the login form and logout: no login needed
# Every guarded page's own router (tests walk them: each must refuse the anonymous).
GUARDED_ROUTERS = [
    m.router
    for m in (
        dashboard,
        issues,
        media,
        calendar,
        mailbox,
        events,
        contributions,
        contacts,
        account,
        accounts,
        logs,
        reports,
    )
]
router = APIRouter(dependencies=GUARDED)
for each in GUARDED_ROUTERS:
    router.include_router(each, prefix="/staff")
uploads = APIRouter(dependencies=GUARDED)  # its own body limit (see guard.Limits)
for each in (contacts.uploads, media.uploads):
    uploads.include_router(each, prefix="/staff")
    GUARDED_ROUTERS.append(each)


# Known errors from the domain become a page, not a traceback.
def _unknown(request: Request, exc: Exception) -> Response:
    return page(
        request,
        "message.html",
        {"title": "Not found", "message": str(exc)},
        status=404,
        staff=visitor(request),
    )


def install(app: FastAPI) -> None:
    """Register the console's error pages on ``app``."""

    @app.exception_handler(IssueError)
    async def _issue_error(request: Request, exc: IssueError) -> Response:
        return _unknown(request, exc)

    @app.exception_handler(CalendarError)
    async def _calendar_error(request: Request, exc: CalendarError) -> Response:
        return _unknown(request, exc)
