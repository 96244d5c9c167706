"""The events diary in the console."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from mailer import (
    clock,
    events,
)
from mailer.models import (
    EventAudience,
)
from mailer.web.pages import (
    flash,
    page,
    redirect,
)
from mailer.web.staff.common import DB, Staff, audit_action, local_zone

router = APIRouter()


@router.get("/events", response_class=HTMLResponse)
def event_list(request: Request, account: Staff, session: DB) -> Response:
    start = clock.now().astimezone(local_zone(request)).date() - timedelta(days=7)
    return page(
        request,
        "staff/events.html",
        {"events": events.listing(session, start), "audiences": list(EventAudience), "error": None},
        staff=account,
    )


@router.post("/events", response_class=HTMLResponse)
def event_add(
    request: Request,
    account: Staff,
    session: DB,
    when: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    location: Annotated[str, Form()] = "",
    link: Annotated[str, Form()] = "",
    audience: Annotated[str, Form()] = "both",
) -> Response:
    try:
        events.add(
            session,
            date.fromisoformat(when),
            title,
            location=location,
            link=link or None,
            audience=EventAudience(audience),
        )
        audit_action(session, account, "event:add", detail=f"{when} {title}")
        session.commit()
    except (ValueError, events.EventError) as exc:
        session.rollback()
        start = clock.now().astimezone(local_zone(request)).date() - timedelta(days=7)
        return page(
            request,
            "staff/events.html",
            {
                "events": events.listing(session, start),
                "audiences": list(EventAudience),
                "error": str(exc),
            },
            status=422,
            staff=account,
        )
    flash(request, f"Added the event {title}.")
    return redirect("/staff/events")
