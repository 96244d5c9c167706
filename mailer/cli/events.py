"""``mailer events …``: the events diary that issues carry for six weeks ahead."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mailer import clock, events
from mailer.cli.output import AsJson, pick, print_document, table
from mailer.cli.state import console, err, fail, state
from mailer.models import EventAudience

app = typer.Typer(help="The events diary.", no_args_is_help=True)
_EVENT_FIELDS = ("id", "starts_on", "title", "location", "link", "audience")


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option}: expected a date like 2027-03-10, got {value!r}")


@app.command("add")
def add_command(
    ctx: typer.Context,
    when: Annotated[str, typer.Argument(help="Date, e.g. 2027-03-10.")],
    title: Annotated[str, typer.Argument(help="What it is.")],
    location: Annotated[str, typer.Option(help="Where.")] = "",
    link: Annotated[str | None, typer.Option(help="https address for details.")] = None,
    audience: Annotated[
        EventAudience, typer.Option(help="internal (bulletin), external or both.")
    ] = EventAudience.BOTH,
) -> None:
    """Add an event to the diary.

    Example: mailer events add 2027-03-10 "LEP Network Conference" --location London
    --link https://conference.example --audience both
    """
    starts_on = _date(when, "DATE")
    current = state(ctx)
    with current.session() as session:
        event = events.add(
            session, starts_on, title, location=location, link=link, audience=audience
        )
        current.audit(session, "event:add", f"event {event.id}", f"{starts_on} {title}")
    console.print(f"Added event {event.id}: {event.starts_on} {escape(event.title)}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include past events.")] = False,
    as_json: AsJson = False,
) -> None:
    """List the diary (from today unless --all).

    Example: mailer events list
    """
    current = state(ctx)
    zone = current.config.settings.calendar.zone
    start = None if all_ else clock.now().astimezone(zone).date()
    with current.session() as session:
        found = events.listing(session, start)
    if as_json:
        print_document({"events": [pick(event, *_EVENT_FIELDS) for event in found]})
        return
    table(
        ("id", "date", "title", "location", "audience", "link"),
        (
            (
                str(event.id),
                event.starts_on.isoformat(),
                event.title,
                event.location,
                event.audience.value,
                event.link or "",
            )
            for event in found
        ),
    )
    err.print(f"{len(found)} events")


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: date, title, location, link, audience.")],
) -> None:
    """Import events from CSV; events already in the diary (same date and title) are kept.

    Example: mailer events import events.csv
    """
    current = state(ctx)
    with current.session() as session:
        result = events.import_csv(session, file)
        current.audit(session, "events:import", file.name, f"{result.added} added")
    console.print(
        f"{result.added} added, {result.unchanged} already in the diary, "
        f"{len(result.problems)} rejected"
    )
    for problem in result.problems:
        console.print(f"[red]{escape(problem)}[/]")
