"""Charts as server-rendered SVG: no JavaScript, each with its title, its description and
the data table behind it (the same :class:`Chart` makes the picture, the table and the CSV).

A chart is drawn from numbers only; every bar and point carries its own ``<title>``
("Series, category: value") so a screen reader, a tooltip and a test read the same
figures the table shows. Colours come from classes (``reports.css``), so the site's
Content-Security-Policy (no inline style) holds and dark mode works.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

from mailer.contacts import to_spreadsheet_cell

WIDTH = 720
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 64


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    """What a chart shows: categories along one axis, one or more series of values."""

    slug: str
    title: str
    description: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    kind: Literal["bar", "line", "stacked"] = "bar"
    unit: str = ""
    target: float | None = None
    target_label: str = ""
    targets: tuple[float, ...] = ()  # a stacked chart's target or cap, per category
    notes: tuple[str, ...] = field(default_factory=tuple)

    def rows(self) -> list[list[str]]:
        """The data table: a header row, then one row per category."""
        header = [self.category_name, *(s.name for s in self.series)]
        if self.targets:
            header.append(self.target_label)
        body = []
        for i, category in enumerate(self.categories):
            row = [category, *(_number(s.values[i]) for s in self.series)]
            if self.targets:
                row.append(_number(self.targets[i]))
            body.append(row)
        return [header, *body]

    @property
    def category_name(self) -> str:
        return "Issue" if self.kind != "stacked" else "Publication"

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in self.rows():
            writer.writerow([to_spreadsheet_cell(cell) for cell in row])
        return out.getvalue()


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _scale(top: float) -> tuple[float, list[float]]:
    """A rounded top of the axis and its gridlines."""
    if top <= 0:
        return 1.0, [0.0, 1.0]
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        for unit in (0.01, 0.1, 1):
            size = step * unit
            if top / size <= 5:
                ticks = int(top / size) + (0 if top % size == 0 else 1)
                return ticks * size, [size * i for i in range(ticks + 1)]
    ticks = 5
    size = top / ticks
    return top, [size * i for i in range(ticks + 1)]


def svg(chart: Chart) -> str:
    """The chart as an inline SVG element, labelled by its title and description."""
    if chart.kind == "stacked":
        return _stacked(chart)
    ident = f"chart-{chart.slug}"
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in chart.series for v in s.values]
    top, ticks = _scale(max([*values, chart.target or 0, 0]))
    parts = _open(chart, ident)
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(round(tick, 2))}'
            f"{escape(chart.unit)}</text>"
        )
    count = max(1, len(chart.categories))
    slot = plot_w / count
    for i, category in enumerate(chart.categories):
        x = LEFT + slot * i + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="end" '
            f'transform="rotate(-35 {x:.1f} {HEIGHT - BOTTOM + 16})">{escape(category)}</text>'
        )
    if chart.kind == "bar":
        group = slot * 0.8
        width = group / max(1, len(chart.series))
        for n, series in enumerate(chart.series):
            for i, value in enumerate(series.values):
                height = plot_h * value / top
                x = LEFT + slot * i + (slot - group) / 2 + width * n
                y = TOP + plot_h - height
                over = " over" if chart.target is not None and value > chart.target else ""
                parts.append(
                    f'<rect class="bar series-{n}{over}" x="{x:.1f}" y="{y:.1f}" '
                    f'width="{max(1.0, width - 2):.1f}" height="{height:.1f}">'
                    f"{_point_title(chart, series, i)}</rect>"
                )
    else:
        for n, series in enumerate(chart.series):
            points = [
                (LEFT + slot * i + slot / 2, TOP + plot_h - plot_h * value / top)
                for i, value in enumerate(series.values)
            ]
            if len(points) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                parts.append(f'<polyline class="line series-{n}" points="{path}"/>')
            for i, (x, y) in enumerate(points):
                parts.append(
                    f'<circle class="series-{n}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                    f"{_point_title(chart, series, i)}</circle>"
                )
    if chart.target is not None:
        y = TOP + plot_h - plot_h * chart.target / top
        parts.append(
            f'<line class="target" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}">'
            f"<title>{escape(chart.target_label)}: {_number(chart.target)}</title></line>"
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
        f'y2="{TOP + plot_h}"/>'
    )
    if not chart.categories:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">Nothing sent yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(chart: Chart, ident: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(chart.title)}</title>',
        f'<desc id="{ident}-desc">{escape(chart.description)}</desc>',
        f'<rect class="chart-bg" x="0" y="0" width="{WIDTH}" height="{height}"/>',
    ]


def _point_title(chart: Chart, series: Series, index: int) -> str:
    value = _number(series.values[index])
    return f"<title>{escape(series.name)}, {escape(chart.categories[index])}: {value}</title>"


def _stacked(chart: Chart) -> str:
    """Horizontal stacked bars, one per category, with the target or cap marked on each."""
    ident = f"chart-{chart.slug}"
    row_h, gap = 34, 26
    height = TOP + len(chart.categories) * (row_h + gap) + 40
    left = 140
    plot_w = WIDTH - left - RIGHT
    totals = [sum(s.values[i] for s in chart.series) for i in range(len(chart.categories))]
    top, ticks = _scale(max([*totals, *chart.targets, 1]))
    parts = _open(chart, ident, height)
    bottom = height - 40
    for tick in ticks:
        x = left + plot_w * tick / top
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{_number(tick)}</text>'
        )
    for i, category in enumerate(chart.categories):
        y = TOP + i * (row_h + gap)
        parts.append(
            f'<text x="{left - 8}" y="{y + row_h / 2 + 5:.1f}" text-anchor="end">'
            f"{escape(category)}</text>"
        )
        x = float(left)
        for n, series in enumerate(chart.series):
            width = plot_w * series.values[i] / top
            parts.append(
                f'<rect class="bar series-{n}" x="{x:.1f}" y="{y}" width="{width:.1f}" '
                f'height="{row_h}">{_point_title(chart, series, i)}</rect>'
            )
            x += width
        if chart.targets:
            mark = left + plot_w * chart.targets[i] / top
            parts.append(
                f'<line class="target" x1="{mark:.1f}" x2="{mark:.1f}" y1="{y - 6}" '
                f'y2="{y + row_h + 6}"><title>{escape(category)}, {escape(chart.target_label)}: '
                f"{_number(chart.targets[i])}</title></line>"
            )
    parts.append("</svg>")
    return "".join(parts)


def legend(chart: Chart) -> list[tuple[str, str]]:
    """(class, name) of each series, and the target's, for a legend beside the chart."""
    found = [(f"series-{n}", s.name) for n, s in enumerate(chart.series)]
    if chart.target is not None:
        found.append(("target", f"{chart.target_label} ({_number(chart.target)})"))
    elif chart.targets:
        found.append(("target", chart.target_label))
    return found


def tables(charts: Sequence[Chart]) -> dict[str, list[list[str]]]:
    """Each chart's data table by its slug."""
    return {chart.slug: chart.rows() for chart in charts}
