"""The events diary in the console: add, edit and delete events (each audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from mailer import clock, events
from mailer.models import Event, EventAudience, StaffAccount
from mailer.web.pages import RowId, flash, page, redirect
from mailer.web.staff.common import DB, Staff, audit_action, local_zone, not_found

router = APIRouter()


@dataclass(frozen=True)
class Typed:
    """An event's fields as typed in the form (kept when one is refused)."""

    when: str = ""
    title: str = ""
    location: str = ""
    link: str = ""
    audience: str = EventAudience.BOTH.value

    @classmethod
    def of(cls, event: Event) -> Typed:
        return cls(
            event.starts_on.isoformat(),
            event.title,
            event.location,
            event.link or "",
            event.audience.value,
        )

    def store(self, session: Session, event_id: int | None = None) -> Event:
        """Add the event (or change event ``event_id``) through the domain.

        :raises events.EventError: a field is refused (``field`` names the form's field).
        """
        try:
            starts_on = date.fromisoformat(self.when)
        except ValueError:
            raise events.EventError(
                f"date: expected a date like 2027-03-10, got {self.when!r}", "when"
            ) from None
        try:
            audience = EventAudience(self.audience)
        except ValueError:
            raise events.EventError(
                "audience: expected internal, external or both", "audience"
            ) from None
        link = self.link or None
        if event_id is None:
            return events.add(
                session, starts_on, self.title, location=self.location, link=link, audience=audience
            )
        return events.edit(
            session,
            event_id,
            starts_on,
            self.title,
            location=self.location,
            link=link,
            audience=audience,
        )


Form300 = Annotated[str, Form(max_length=300)]


def _errors(exc: events.EventError) -> dict[str, str]:
    return {exc.field or "form": str(exc)}


def _list_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    typed: Typed | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    start = clock.now().astimezone(local_zone(request)).date() - timedelta(days=7)
    return page(
        request,
        "staff/events.html",
        {
            "events": events.listing(session, start),
            "audiences": list(EventAudience),
            "typed": typed or Typed(),
            "errors": errors or {},
        },
        status=422 if errors else 200,
        staff=account,
    )


def _edit_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    event: Event,
    typed: Typed | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    return page(
        request,
        "staff/event.html",
        {
            "event": event,
            "audiences": list(EventAudience),
            "typed": typed or Typed.of(event),
            "errors": errors or {},
        },
        status=422 if errors else 200,
        staff=account,
    )


def _found(
    request: Request, session: Session, account: StaffAccount, event_id: int
) -> Event | Response:
    try:
        return events.get(session, event_id)
    except events.EventError as exc:
        return not_found(request, account, str(exc))


@router.get("/events", response_class=HTMLResponse)
def event_list(request: Request, account: Staff, session: DB) -> Response:
    return _list_page(request, session, account)


@router.post("/events", response_class=HTMLResponse)
def event_add(
    request: Request,
    account: Staff,
    session: DB,
    when: Annotated[str, Form(max_length=40)] = "",
    title: Form300 = "",
    location: Form300 = "",
    link: Annotated[str, Form(max_length=1000)] = "",
    audience: Annotated[str, Form(max_length=20)] = "both",
) -> Response:
    typed = Typed(when, title, location, link, audience)
    try:
        event = typed.store(session)
    except events.EventError as exc:
        session.rollback()
        return _list_page(request, session, account, typed, _errors(exc))
    audit_action(session, account, "event:add", f"event {event.id}", f"{when} {event.title}")
    session.commit()
    flash(request, f"Added the event {event.title}.")
    return redirect("/staff/events")


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_view(request: Request, account: Staff, session: DB, event_id: RowId) -> Response:
    found = _found(request, session, account, event_id)
    if isinstance(found, Response):
        return found
    return _edit_page(request, session, account, found)


@router.post("/events/{event_id}", response_class=HTMLResponse)
def event_edit(
    request: Request,
    account: Staff,
    session: DB,
    event_id: RowId,
    when: Annotated[str, Form(max_length=40)] = "",
    title: Form300 = "",
    location: Form300 = "",
    link: Annotated[str, Form(max_length=1000)] = "",
    audience: Annotated[str, Form(max_length=20)] = "both",
) -> Response:
    found = _found(request, session, account, event_id)
    if isinstance(found, Response):
        return found
    before = f"{found.starts_on} {found.title}"
    typed = Typed(when, title, location, link, audience)
    try:
        event = typed.store(session, event_id)
    except events.EventError as exc:
        session.rollback()
        return _edit_page(request, session, account, found, typed, _errors(exc))
    audit_action(
        session, account, "event:edit", f"event {event_id}", f"{before} -> {when} {event.title}"
    )
    session.commit()
    flash(request, f"Saved the event {event.title}.")
    return redirect("/staff/events")


@router.post("/events/{event_id}/delete", response_class=HTMLResponse)
def event_delete(request: Request, account: Staff, session: DB, event_id: RowId) -> Response:
    try:
        event = events.delete(session, event_id)
    except events.EventError as exc:
        return not_found(request, account, str(exc))
    audit_action(
        session, account, "event:delete", f"event {event_id}", f"{event.starts_on} {event.title}"
    )
    session.commit()
    flash(request, f"Deleted the event {event.title} ({event.starts_on:%d %b %Y}).")
    return redirect("/staff/events")
