"""How commands show results: Rich tables on a terminal, tab-separated rows when piped, one
JSON document for scripts, and warnings on stderr (never in the data on stdout).

Every table the command line prints goes through ``table``; every JSON document through
``print_json`` (whose ``jsonable`` is the one rule for times, dates, enums and records).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from mailer.cli.state import console, err

Cell = str | Text
"""A table cell: plain text (shown as it is, never read as markup), or styled Rich text."""

AsJson = Annotated[
    bool,
    typer.Option(
        "--json", help='Print one JSON document for scripts (with a "warnings" list) instead.'
    ),
]

# Characters that end a line for str.splitlines, and the tab: none may stay inside a cell.
_BREAKS = dict.fromkeys(map(ord, "\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"), " ")


def _on_terminal(shown: Console) -> bool:
    isatty = getattr(shown.file, "isatty", None)
    return bool(isatty and isatty())


def piped() -> bool:
    """Whether standard output is something other than a terminal (a pipe, a file)."""
    return not _on_terminal(console)


def settle_wrapping() -> None:
    """Piped or redirected, nothing is wrapped: a long name or path stays on its line."""
    for shown in (console, err):
        shown.soft_wrap = not _on_terminal(shown)


def _plain(cell: Cell) -> str:
    return (cell.plain if isinstance(cell, Text) else cell).translate(_BREAKS)


def table(
    columns: Sequence[str | Column],
    rows: Iterable[Sequence[Cell] | None],
    *,
    title: str | None = None,
    **options: Any,
) -> None:
    """Print rows under their column names (a None among them: a line between sections).

    On a terminal: a Rich table (``options`` are the Table's). Otherwise: a header row,
    then one line per row, tab-separated and never wrapped (a tab or line break inside a
    cell becomes a space); the title, if any, goes to stderr.
    """
    if piped():
        if title:
            err.print(escape(title), soft_wrap=True)
        headers = [str(c.header) if isinstance(c, Column) else c for c in columns]
        lines = ["\t".join(map(_plain, row)) for row in (headers, *rows) if row is not None]
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        return
    options.setdefault("title_justify", "left")
    shown = Table(*columns, title=escape(title) if title else None, **options)
    for row in rows:
        if row is None:
            shown.add_section()
        else:
            shown.add_row(*(cell if isinstance(cell, Text) else escape(cell) for cell in row))
    console.print(shown)


def warn(message: str) -> None:
    """A warning, on stderr."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def record(value: object) -> dict[str, object]:
    """A dataclass's fields by name (its values made JSON by ``jsonable``)."""
    assert dataclasses.is_dataclass(value) and not isinstance(value, type)
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def pick(row: object, *names: str) -> dict[str, object]:
    """The named attributes of a database row: only those, so nothing else leaks out."""
    return {name: getattr(row, name) for name in names}


def jsonable(value: object) -> object:
    """``value`` in JSON's types: times and dates in ISO 8601 (times with their UTC offset),
    durations in seconds, enums by value, dataclasses by their fields, tuples as lists.

    :raises TypeError: a value with no JSON form (a mistake in the command).
    """
    if value is None or isinstance(value, bool | int | float):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(record(value))
    if isinstance(value, Mapping):
        return {str(jsonable(key)): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


def print_json(data: object) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def print_document(fields: Mapping[str, object], warnings: Sequence[str] = ()) -> None:
    """A command's JSON document: its ``fields`` and a "warnings" list (empty when none)."""
    print_json({**fields, "warnings": list(warnings)})
