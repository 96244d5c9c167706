"""The board report as a page: printable HTML (A4 print CSS), and a PDF when WeasyPrint is
installed (an optional extra: ``pip install weasyprint``; never required).

The same template serves the console (``/staff/reports/board``, the site's stylesheets)
and ``mailer report --out`` (one self-contained file: the stylesheets inlined).

Errors::

    NoPdf   WeasyPrint is not installed (or cannot load its libraries)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from mailer import charts
from mailer.reports import Board
from mailer.settings import NetworkSettings

HERE = Path(__file__).parent / "web"
STYLESHEETS = ("site.css", "reports.css", "board.css")


class NoPdf(RuntimeError):
    """A PDF needs WeasyPrint, which is not installed here."""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
    )


def period_label(board: Board) -> str:
    """'1 January to 28 February 2027'."""
    start, end = board.start, board.end
    first = f"{start.day} {start:%B}" + (f" {start.year}" if start.year != end.year else "")
    return f"{first} to {end.day} {end:%B %Y}"


def render(
    board: Board,
    network: NetworkSettings,
    made: datetime,
    zone: ZoneInfo,
    *,
    standalone: bool,
    back: str = "",
    pdf: str = "",
) -> str:
    """The board report's HTML: ``standalone`` inlines the stylesheets (a file to keep or
    mail); otherwise it links the site's."""
    css = ""
    if standalone:
        css = "\n".join(
            (HERE / "static" / name).read_text(encoding="utf-8") for name in STYLESHEETS
        )
    local = made.astimezone(zone)
    return (
        _environment()
        .get_template("staff/board.html")
        .render(
            board=board,
            network=network.model_dump(),
            period=period_label(board),
            made=f"{local.day} {local:%B %Y %H:%M}",
            css=Markup(css),  # noqa: S704 (our own stylesheets)
            back=back,
            pdf=pdf,
            csv_base="",
            csv_query="",
            svg=lambda chart: Markup(charts.svg(chart)),  # noqa: S704 (numbers, escaped)
            legend=charts.legend,
        )
    )


def pdf_available() -> bool:
    """Whether WeasyPrint can be imported here (it is an optional extra)."""
    try:
        import weasyprint  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def to_pdf(html: str) -> bytes:
    """The page as an A4 PDF, by WeasyPrint (no network: only what the page holds).

    :raises NoPdf: WeasyPrint is not installed.
    """
    try:
        from weasyprint import HTML  # type: ignore[import-not-found, unused-ignore]
    except (ImportError, OSError) as exc:
        raise NoPdf(
            "a PDF needs WeasyPrint (pip install weasyprint); print the HTML to PDF instead"
        ) from exc

    def no_fetch(url: str, *args: object, **kwargs: object) -> dict[str, object]:
        raise ValueError(f"not fetched: {url}")

    data = HTML(string=html, url_fetcher=no_fetch).write_pdf()
    return bytes(data)
