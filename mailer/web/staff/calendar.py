"""The editorial calendar in the console: a year's slots, counts, planning and the ICS feed.

Anyone on the staff may look; changing the calendar needs the approver role. Every
change goes through the same functions, rules and messages as `mailer calendar`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from mailer import calendar, clock
from mailer.models import Publication, StaffAccount
from mailer.staff import can_approve
from mailer.web.pages import RowId, context, flash, page, redirect
from mailer.web.staff.common import APPROVER, DB, Staff, audit_action, local_zone

router = APIRouter()

Year = Annotated[int | None, Query(ge=calendar.FIRST_YEAR, le=calendar.LAST_YEAR)]
FormYear = Annotated[int, Form(ge=calendar.FIRST_YEAR, le=calendar.LAST_YEAR)]


def _this_year(request: Request) -> int:
    return clock.now().astimezone(local_zone(request)).year


def _calendar_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    year: int,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, Any] | None = None,
) -> Response:
    """The year's page; ``errors`` by field ("add", "move-12", "skip-12", "plan") with what
    was ``typed`` kept."""
    settings = context(request).config.settings
    views = calendar.year_view(session, year, settings)
    session.commit()  # a year seen for the first time keeps its bulletins
    this_year = _this_year(request)
    return page(
        request,
        "staff/calendar.html",
        {
            "year": year,
            "years": range(max(calendar.FIRST_YEAR, this_year - 3), this_year + 3),
            "first_year": calendar.FIRST_YEAR,
            "last_year": calendar.LAST_YEAR,
            "views": views,
            "counts": calendar.year_counts(views, settings),
            "publications": list(Publication),
            "can_change": can_approve(account.role),
            "zone": local_zone(request),
            "errors": errors or {},
            "typed": typed or {},
        },
        status=422 if errors else 200,
        staff=account,
    )


@router.get("/calendar", response_class=HTMLResponse)
def calendar_view(request: Request, account: Staff, session: DB, year: Year = None) -> Response:
    return _calendar_page(request, session, account, year or _this_year(request))


@router.get("/calendar.ics")
def calendar_ics(request: Request, account: Staff, session: DB, year: Year = None) -> Response:
    """The year's slots and deadlines for staff calendars (what `mailer calendar --ics`
    writes)."""
    settings = context(request).config.settings
    chosen = year or _this_year(request)
    views = calendar.year_view(session, chosen, settings)
    session.commit()
    return Response(
        calendar.to_ics(views, settings.network.domain),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="calendar-{chosen}.ics"'},
    )


def _year_of(request: Request, session: Session, slot_id: int) -> int:
    slot = calendar.get(session, slot_id)
    return slot.send_at.astimezone(local_zone(request)).year


@router.post("/calendar/plan", response_class=HTMLResponse, dependencies=[APPROVER])
def calendar_plan(request: Request, account: Staff, session: DB, year: FormYear) -> Response:
    settings = context(request).config.settings
    try:
        added = calendar.plan_newsletters(session, year, settings)
    except calendar.CalendarError as exc:
        session.rollback()
        return _calendar_page(request, session, account, year, errors={"plan": str(exc)})
    audit_action(session, account, "calendar:plan", str(year), f"{len(added)} newsletters")
    session.commit()
    flash(request, f"Planned {len(added)} newsletters in {year}.")
    return redirect(f"/staff/calendar?year={year}")


@router.post("/calendar/add", response_class=HTMLResponse, dependencies=[APPROVER])
def calendar_add(
    request: Request,
    account: Staff,
    session: DB,
    publication: Annotated[Publication, Form()],
    year: FormYear,
    when: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    settings = context(request).config.settings
    try:
        slot = calendar.add_slot(
            session, publication, calendar.parse_when(when, local_zone(request)), settings
        )
    except calendar.CalendarError as exc:
        session.rollback()
        typed = {"add_publication": publication.value, "add_when": when}
        return _calendar_page(
            request, session, account, year, errors={"add": str(exc)}, typed=typed
        )
    audit_action(
        session, account, "calendar:add", f"slot {slot.id}", f"{publication} {slot.number}"
    )
    session.commit()
    flash(request, f"Added slot {slot.id}: {slot.publication} {slot.number}.")
    chosen = slot.send_at.astimezone(local_zone(request)).year
    return redirect(f"/staff/calendar?year={chosen}#slot-{slot.id}")


@router.post("/calendar/{slot_id}/move", response_class=HTMLResponse, dependencies=[APPROVER])
def calendar_move(
    request: Request,
    account: Staff,
    session: DB,
    slot_id: RowId,
    when: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    settings = context(request).config.settings
    zone = local_zone(request)
    year = _year_of(request, session, slot_id)
    try:
        slot = calendar.move_slot(session, slot_id, calendar.parse_when(when, zone), settings)
    except calendar.CalendarError as exc:
        session.rollback()
        field = f"move-{slot_id}"
        return _calendar_page(
            request, session, account, year, errors={field: str(exc)}, typed={field: when}
        )
    audit_action(session, account, "calendar:move", f"slot {slot_id}", when)
    session.commit()
    local = slot.send_at.astimezone(zone)
    flash(
        request,
        f"Slot {slot.id} ({slot.publication} {slot.number}) now goes out "
        f"{local:%a} {local.day} {local:%b %Y %H:%M}.",
    )
    return redirect(f"/staff/calendar?year={local.year}#slot-{slot.id}")


@router.post("/calendar/{slot_id}/skip", response_class=HTMLResponse, dependencies=[APPROVER])
def calendar_skip(
    request: Request,
    account: Staff,
    session: DB,
    slot_id: RowId,
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    year = _year_of(request, session, slot_id)
    try:
        slot = calendar.skip_slot(session, slot_id, note)
    except calendar.CalendarError as exc:
        session.rollback()
        field = f"skip-{slot_id}"
        return _calendar_page(
            request, session, account, year, errors={field: str(exc)}, typed={field: note}
        )
    audit_action(session, account, "calendar:skip", f"slot {slot_id}", note)
    session.commit()
    flash(request, f"Slot {slot.id} ({slot.publication} {slot.number}) is skipped.")
    return redirect(f"/staff/calendar?year={year}#slot-{slot.id}")
