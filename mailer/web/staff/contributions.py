"""Contributions from LEPs in the console: the queue, one contribution with a preview,
accepting it into a bulletin's draft (or the diary) and declining it with a reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import Session

from mailer import clock, contributions, issues, media
from mailer.contributions import ContributionError, ContributionInvalid
from mailer.issues import IssueError
from mailer.markup import to_html
from mailer.models import ContributionStatus, StaffAccount
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


def _show(
    request: Request,
    session: Session,
    account: StaffAccount,
    contribution_id: int,
    *,
    errors: dict[str, str] | None = None,
    reason: str = "",
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
        },
        status=status,
        staff=account,
    )


@router.get("/contributions/{contribution_id}", response_class=HTMLResponse)
def show(request: Request, contribution_id: RowId, account: Staff, session: DB) -> Response:
    return _show(request, session, account, contribution_id)


@router.post("/contributions/{contribution_id}/accept", response_class=HTMLResponse)
def accept(
    request: Request,
    contribution_id: RowId,
    account: Staff,
    session: DB,
    slot: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    try:
        done = contributions.accept(
            session,
            contribution_id,
            by=account.email,
            settings=context(request).config.settings,
            slot_id=int(slot) if slot.isdigit() else None,
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
