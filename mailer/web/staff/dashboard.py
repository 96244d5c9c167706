"""The console's dashboard: the next slots, issues in progress, recent sends."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mailer import (
    calendar,
    clock,
    contributions,
    issues,
    outbox,
    reports,
)
from mailer.models import (
    IssueStatus,
)
from mailer.web.pages import (
    context,
    page,
)
from mailer.web.staff.common import DB, Staff, local_zone
from mailer.web.staff.reports import chart_helpers

router = APIRouter()


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, account: Staff, session: DB) -> Response:
    settings = context(request).config.settings
    zone = local_zone(request)
    now = clock.now()
    year = now.astimezone(zone).year
    views = calendar.year_view(session, year, settings)
    upcoming = [v for v in views if v.send_at > now and v.status != "skipped"][:8]
    if len(upcoming) < 8:
        upcoming += [
            v for v in calendar.year_view(session, year + 1, settings) if v.status != "skipped"
        ][: 8 - len(upcoming)]
    session.commit()
    in_progress = [
        i
        for i in issues.listing(session)
        if i.status
        in (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SCHEDULED, IssueStatus.SENDING)
    ]
    sent = [
        i for i in issues.listing(session) if i.status in (IssueStatus.SENT, IssueStatus.SENDING)
    ][:5]
    last_sends = [(i, outbox.report(session, i.id or 0)) for i in sent]
    # The year at a glance (mailer.reports): on time against the target, under the cap.
    glance = reports.targets_chart(reports.targets(session, year, settings), year)
    session.commit()
    return page(
        request,
        "staff/dashboard.html",
        {
            "year": year,
            "counts": calendar.year_counts(views, settings),
            "upcoming": upcoming,
            "in_progress": in_progress,
            "reports": last_sends,
            "chart": glance,
            "csv_base": "/staff/reports/charts",
            "csv_query": f"year={year}",
            **chart_helpers(),
            "zone": zone,
            "contributions": contributions.count_waiting(session),
        },
        staff=account,
    )
