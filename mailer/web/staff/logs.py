"""The audit log and the bounce log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mailer import (
    audit,
    bounces,
)
from mailer.web.pages import (
    page,
)
from mailer.web.staff.common import DB, Staff, local_zone

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request, account: Staff, session: DB, actor: str = "", action: str = ""
) -> Response:
    entries = audit.listing(session, actor=actor or None, action=action or None, limit=200)
    return page(
        request,
        "staff/audit.html",
        {"entries": entries, "actor": actor, "action": action, "zone": local_zone(request)},
        staff=account,
    )


@router.get("/bounces", response_class=HTMLResponse)
def bounce_log(request: Request, account: Staff, session: DB) -> Response:
    return page(
        request,
        "staff/bounces.html",
        {"events": bounces.listing(session, limit=200), "zone": local_zone(request)},
        staff=account,
    )
