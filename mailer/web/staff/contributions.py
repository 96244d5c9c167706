"""Contributions from LEPs in the console: the queue, one contribution with a preview,
accepting it into a bulletin's draft (or the diary) and declining it with a reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import Session

from mailer import clock, contributions, issues, media
from mailer.contributions import ContributionError, ContributionInvalid, Fields
from mailer.issues import IssueError
from mailer.markup import to_html
from mailer.models import Contribution, ContributionKind, ContributionStatus, StaffAccount
from mailer.web.pages import RowId, context, flash, page, redirect
from mailer.web.staff.common import DB, Staff, local_zone, not_found

router = APIRouter()


@router.get("/contributions", response_class=HTMLResponse)
def queue(request: Request, account: Staff, session: DB, status: str = "") -> Response:
    wanted = next((s for s in ContributionStatus if s.value == status), None)
    return page(
        request,
        "staff/contributions.html",
        {
            "entries": contributions.listing(session, wanted),
            "status": wanted.value if wanted else "",
            "statuses": list(ContributionStatus),
            "waiting": contributions.count_waiting(session),
            "label": lambda at: issues.slot_label(at, local_zone(request)),
        },
        staff=account,
    )


def _typed(row: Contribution) -> dict[str, str]:
    """A contribution's fields as the edit form shows them."""
    return {
        "kind": row.kind.value,
        "headline": row.headline,
        "text": row.body,
        "link": row.link or "",
        "image_alt": row.image_alt or "",
        "event_date": row.event_on.isoformat() if row.event_on else "",
        "event_time": row.event_time or "",
        "event_place": row.event_place or "",
    }


def _show(
    request: Request,
    session: Session,
    account: StaffAccount,
    contribution_id: int,
    *,
    errors: dict[str, str] | None = None,
    reason: str = "",
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    try:
        entry = contributions.entry(session, contribution_id)
    except ContributionError as exc:
        return not_found(request, account, str(exc))
    row = entry.contribution
    root = context(request).config.settings.web.root
    return page(
        request,
        "staff/contribution.html",
        {
            "entry": entry,
            "row": row,
            "body_html": Markup(to_html(row.body)),  # noqa: S704 (sanitised by nh3)
            "image_url": media.url(root, row.image_name) if row.image_name else "",
            "targets": contributions.targets(session, clock.now()),
            "label": lambda at: issues.slot_label(at, local_zone(request)),
            "errors": errors or {},
            "reason": reason,
            "typed": typed or _typed(row),
            "kinds": list(ContributionKind),
            "editing": typed is not None,
        },
        status=status,
        staff=account,
    )


@router.get("/contributions/{contribution_id}", response_class=HTMLResponse)
def show(request: Request, contribution_id: RowId, account: Staff, session: DB) -> Response:
    return _show(request, session, account, contribution_id)


Field = Annotated[str, Form(max_length=20000)]


@router.post("/contributions/{contribution_id}/edit", response_class=HTMLResponse)
def edit(
    request: Request,
    contribution_id: RowId,
    account: Staff,
    session: DB,
    kind: Field = "",
    headline: Field = "",
    text: Field = "",
    link: Field = "",
    image_alt: Field = "",
    event_date: Field = "",
    event_time: Field = "",
    event_place: Field = "",
) -> Response:
    typed = {
        "kind": kind,
        "headline": headline,
        "text": text.replace("\r\n", "\n"),
        "link": link,
        "image_alt": image_alt,
        "event_date": event_date,
        "event_time": event_time,
        "event_place": event_place,
    }
    settings = context(request).config.settings
    try:
        row = contributions.get(session, contribution_id)
        checked = contributions.check(
            Fields(**typed),
            settings.contributions,
            has_image=bool(row.image_name),
            today=clock.now().astimezone(settings.calendar.zone).date(),
        )
        contributions.revise(session, contribution_id, checked, by=account.email)
    except ContributionInvalid as exc:
        session.rollback()
        return _show(
            request, session, account, contribution_id, errors=exc.errors, typed=typed, status=422
        )
    except ContributionError as exc:
        session.rollback()
        return _show(
            request, session, account, contribution_id, errors={"accept": str(exc)}, status=422
        )
    session.commit()
    flash(request, f"Saved contribution {contribution_id}: it is accepted as it reads now.")
    return redirect(f"/staff/contributions/{contribution_id}")


@router.post("/contributions/{contribution_id}/accept", response_class=HTMLResponse)
def accept(
    request: Request,
    contribution_id: RowId,
    account: Staff,
    session: DB,
    slot: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        if slot and not slot.isdigit():
            raise ContributionError("choose a bulletin from the list")
        done = contributions.accept(
            session,
            contribution_id,
            by=account.email,
            settings=context(request).config.settings,
            slot_id=int(slot) if slot else None,
        )
    except (ContributionError, IssueError) as exc:
        session.rollback()
        return _show(
            request, session, account, contribution_id, errors={"accept": str(exc)}, status=422
        )
    session.commit()
    flash(request, f"Accepted: {done.note}. Edit it there like any item.")
    if done.issue is not None:
        return redirect(f"/staff/issues/{done.issue.id}")
    return redirect(f"/staff/events/{done.event.id}" if done.event else "/staff/contributions")


@router.post("/contributions/{contribution_id}/decline", response_class=HTMLResponse)
def decline(
    request: Request,
    contribution_id: RowId,
    account: Staff,
    session: DB,
    background: BackgroundTasks,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        contributions.decline(session, contribution_id, reason=reason, by=account.email)
    except ContributionInvalid as exc:
        session.rollback()
        return _show(
            request, session, account, contribution_id, errors=exc.errors, reason=reason, status=422
        )
    except ContributionError as exc:
        session.rollback()
        return _show(
            request, session, account, contribution_id, errors={"reason": str(exc)}, status=422
        )
    session.commit()
    ctx = context(request)
    background.add_task(
        contributions.send_notices,
        ctx.engine,
        ctx.config,
        ctx.signer,
        ctx.new_transport,
        only=contribution_id,
    )
    flash(request, f"Declined contribution {contribution_id}: its sender is emailed the reason.")
    return redirect("/staff/contributions")
