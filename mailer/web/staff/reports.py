"""Reports in the console: an issue's reach and reads per organisation and kind, the year
at a glance with its charts, the board report; each table also as a CSV download."""

from __future__ import annotations

import io
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from mailer import board, calendar, charts, clock, issues, reports
from mailer.models import IssueStatus
from mailer.web.pages import RowId, context, page
from mailer.web.staff.common import DB, Staff, local_zone

router = APIRouter()
Year = Annotated[int | None, Query(ge=calendar.FIRST_YEAR, le=calendar.LAST_YEAR)]


def chart_helpers() -> dict[str, Any]:
    """What the chart partial needs: the SVG (our own markup, from numbers) and a legend."""
    return {"svg": lambda chart: Markup(charts.svg(chart)), "legend": charts.legend}  # noqa: S704


def _year(request: Request, year: int | None) -> int:
    return year or clock.now().astimezone(local_zone(request)).year


@router.get("/reports", response_class=HTMLResponse)
def year_report(request: Request, account: Staff, session: DB, year: Year = None) -> Response:
    chosen = _year(request, year)
    figures = reports.year_figures(session, chosen, context(request).config.settings)
    session.commit()  # the year's bulletin slots, planned on first look
    start, end = reports.board_period(clock.now().astimezone(local_zone(request)).date())
    return page(
        request,
        "staff/reports.html",
        {
            "year": chosen,
            "figures": figures,
            "csv_base": "/staff/reports/charts",
            "csv_query": f"year={chosen}",
            "board_from": start.isoformat(),
            "board_to": end.isoformat(),
            **chart_helpers(),
        },
        staff=account,
    )


@router.get("/reports/issues.csv")
def year_issues_csv(request: Request, account: Staff, session: DB, year: Year = None) -> Response:
    chosen = _year(request, year)
    figures = reports.year_figures(session, chosen, context(request).config.settings)
    session.commit()
    return _csv(reports.issues_csv(figures.issues), f"issues-{chosen}.csv")


@router.get("/reports/charts/{slug}.csv")
def chart_csv(
    request: Request, account: Staff, slug: str, session: DB, year: Year = None
) -> Response:
    chosen = _year(request, year)
    figures = reports.year_figures(session, chosen, context(request).config.settings)
    session.commit()
    for chart in figures.charts:
        if chart.slug == slug:
            return _csv(chart.csv(), f"{slug}-{chosen}.csv")
    return page(
        request,
        "message.html",
        {"title": "Not found", "message": "There is no such chart."},
        status=404,
        staff=account,
    )


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/reports/issues/{issue_id}.csv")
def issue_report_csv(
    request: Request, account: Staff, issue_id: RowId, session: DB, by: str = "organisation"
) -> Response:
    if by not in reports.BY:
        by = "organisation"
    issue = issues.get(session, issue_id)
    reach = reports.issue_reach(session, issue)
    reads = reports.issue_reads(session, reach, context(request).config.settings.reports.min_group)
    out = io.StringIO()
    reports.write_csv(reports.table_rows(reach, reads, by), reports.csv_columns(by), out)
    number = issue.number.replace("/", "-")
    return _csv(out.getvalue(), f"{issue.publication.value}-{number}-by-{by}.csv")


@router.get("/reports/issues/{issue_id}", response_class=HTMLResponse)
def issue_report(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    issue = issues.get(session, issue_id)
    reach = reports.issue_reach(session, issue)
    reads = reports.issue_reads(session, reach, context(request).config.settings.reports.min_group)
    return page(
        request,
        "staff/report.html",
        {
            "issue": issue,
            "total": reach.total,
            "reads": reads,
            "unreached": reach.unreached,
            "sent": issue.status in (IssueStatus.SENDING, IssueStatus.SENT),
            "by_kind": reports.table_rows(reach, reads, "kind"),
            "by_organisation": reports.table_rows(reach, reads, "organisation"),
            "columns": reports.COLUMNS,
            "kind_label": reports.kind_label,
        },
        staff=account,
    )


def _period(request: Request, start: str, end: str) -> tuple[date, date] | str:
    """The period asked for, or why it cannot be reported."""
    if not start and not end:
        return reports.board_period(clock.now().astimezone(local_zone(request)).date())
    try:
        chosen = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        return "from and to: give both dates as YYYY-MM-DD"
    try:
        reports.check_period(*chosen)
    except reports.ReportError as exc:
        return str(exc).replace("--", "")
    return chosen


def _board_html(request: Request, session: DB, chosen: tuple[date, date], pdf: str) -> str:
    settings = context(request).config.settings
    made = reports.board(session, chosen[0], chosen[1], settings)
    return board.render(
        made,
        settings.network,
        clock.now(),
        local_zone(request),
        standalone=pdf == "inline",
        back="/staff/reports" if pdf != "inline" else "",
        pdf=pdf if pdf != "inline" else "",
    )


@router.get("/reports/board", response_class=HTMLResponse)
def board_report(
    request: Request,
    account: Staff,
    session: DB,
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    chosen = _period(request, start, end)
    if isinstance(chosen, str):
        return page(
            request,
            "message.html",
            {"title": "Not a period", "message": f"{chosen}. Nothing was made."},
            status=400,
            staff=account,
        )
    query = f"from={chosen[0].isoformat()}&to={chosen[1].isoformat()}"
    pdf = f"/staff/reports/board.pdf?{query}" if board.pdf_available() else ""
    return HTMLResponse(_board_html(request, session, chosen, pdf))


@router.get("/reports/board.pdf")
def board_pdf(
    request: Request,
    account: Staff,
    session: DB,
    start: Annotated[str, Query(alias="from", max_length=20)] = "",
    end: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    chosen = _period(request, start, end)
    message = chosen if isinstance(chosen, str) else ""
    if not message:
        assert not isinstance(chosen, str)
        try:
            data = board.to_pdf(_board_html(request, session, chosen, "inline"))
        except board.NoPdf as exc:
            message = str(exc)
        else:
            name = f"board-report-{chosen[0].isoformat()}-{chosen[1].isoformat()}.pdf"
            return Response(
                data,
                media_type="application/pdf",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
    return page(
        request,
        "message.html",
        {"title": "No PDF", "message": f"{message}. Nothing was made."},
        status=400 if isinstance(chosen, str) else 501,
        staff=account,
    )
