"""``mailer report``: the board report of a period, as a printable page (or a PDF)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mailer import board, clock, reports
from mailer.cli.output import AsJson, print_document
from mailer.cli.state import err, fail, state, write_out


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{name}: {value!r} is not a date (YYYY-MM-DD)")


def report_command(
    ctx: typer.Context,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day of the period (default: two months ago, the 1st)."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last day of the period (default: last month's end).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Write a PDF (needs WeasyPrint: pip install weasyprint).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """The board report of a period: its issues, reach per LEP, top links, list growth,
    deliverability and the charts, as one printable HTML page (A4), or a PDF with --pdf.

    Dates are days in [calendar] timezone. The page holds its own stylesheet: open it in a
    browser and print it, or mail it.

    Example:

      mailer report --from 2027-01-01 --to 2027-02-28 --out report.html

      mailer report --from 2027-01-01 --to 2027-02-28 --pdf --out report.pdf

      mailer report --json
    """
    current = state(ctx)
    settings = current.config.settings
    zone = settings.calendar.zone
    default_start, default_end = reports.board_period(clock.now().astimezone(zone).date())
    first = _day(start, "--from") or default_start
    last = _day(end, "--to") or default_end
    if pdf and out is None:
        fail("--pdf: name the file with --out (a PDF is not written to a terminal)")
    try:
        reports.check_period(first, last)
    except reports.ReportError as exc:
        fail(str(exc))
    with current.session() as session:
        made = reports.board(session, first, last, settings)
    if as_json:
        print_document(
            {
                "from": first,
                "to": last,
                "issues": [f.as_dict() for f in made.issues],
                "leps": [row.as_dict() for row in made.leps],
                "unreached_leps": made.unreached,
                "top_links": [
                    {"issue": label, "url": link.url, "label": link.label, "clicks": link.clicks}
                    for label, link in made.links
                ],
                "growth": made.growth,
                "total": made.total.as_dict(),
                "clicks": made.clicks,
                "views": made.views,
                "charts": {chart.slug: chart.rows() for chart in made.charts},
            }
        )
        return
    html = board.render(made, settings.network, clock.now(), zone, standalone=True)
    if pdf:
        assert out is not None
        try:
            data = board.to_pdf(html)
        except board.NoPdf as exc:
            fail(str(exc))
        try:
            out.write_bytes(data)
        except OSError as exc:
            fail(f"--out {out}: cannot write: {exc.strerror or exc}")
        err.print(f"Wrote the board report ({board.period_label(made)}) to {escape(str(out))}")
        return
    if write_out(html, out, f"--out {out}"):
        err.print(
            f"Wrote the board report ({board.period_label(made)}, {len(made.issues)} issues) "
            f"to {escape(str(out))}: open it in a browser to print it"
        )
