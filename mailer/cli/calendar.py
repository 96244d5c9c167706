"""``mailer calendar …`` and ``mailer daemon``: the editorial calendar and its keeper."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import typer
from rich import box
from rich.markup import escape
from rich.table import Column
from rich.text import Text

from mailer import calendar, clock, db, ops
from mailer.cli.output import print_document, print_json, table, warn
from mailer.cli.state import State, console, err, fail, state
from mailer.daemon import Daemon, Outage
from mailer.models import Publication

app = typer.Typer(
    help="The editorial calendar: slots, deadlines, counts against targets.",
    invoke_without_command=True,
)


def _when(value: str, current: State) -> datetime:
    return calendar.parse_when(value, current.config.settings.calendar.zone)


def _local(moment: datetime, zone: str, year: bool = True) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    shown_year = f" {local.year}" if year else ""
    return f"{local:%a} {local.day:>2} {local:%b}{shown_year} {local:%H:%M}"


_COLUMNS = ("slot", "publication", "goes out", "deadline", "status", "issue")
_STATUS_COLOURS = {"sent": "green", "approved": "cyan", "missed": "red", "skipped": "dim"}


@app.callback()
def show(
    ctx: typer.Context,
    year: Annotated[
        int | None,
        typer.Option(
            help=f"Calendar year, {calendar.FIRST_YEAR} to {calendar.LAST_YEAR} "
            "(default: this year).",
            min=calendar.FIRST_YEAR,
            max=calendar.LAST_YEAR,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the slots as JSON.")] = False,
    ics: Annotated[
        Path | None, typer.Option(help="Write the year as an iCalendar file for staff.")
    ] = None,
) -> None:
    """Show every slot of a year: publication, number, send time, deadline, status.

    Bulletins are planned from the rhythm in config.toml the first time a year is shown;
    newsletters are planned by staff (`mailer calendar plan` offers a monthly pattern).
    Counts against the targets, and warnings, go to stderr.

    Example: mailer calendar --year 2027
    """
    if ctx.invoked_subcommand is not None:
        return
    current = state(ctx)
    settings = current.config.settings
    zone = settings.calendar.timezone
    chosen = year if year is not None else clock.now().astimezone(ZoneInfo(zone)).year
    with current.session() as session:
        views = calendar.year_view(session, chosen, settings)
    counts = calendar.year_counts(views, settings)
    if as_json:
        print_json([v.as_json() for v in views])
    elif ics is not None:
        try:
            ics.write_bytes(calendar.to_ics(views, settings.network.domain))
        except OSError as exc:
            fail(f"{ics}: cannot write: {exc.strerror}")
        err.print(f"Wrote {len(views)} slots to {escape(str(ics))}")
    else:
        table(
            [Column(name, no_wrap=True) for name in _COLUMNS],
            (
                (
                    str(view.id),
                    f"{view.publication.value} {view.number}",
                    _local(view.send_at, zone, year=False),
                    _local(view.deadline_at, zone, year=False),
                    Text(view.status, style=_STATUS_COLOURS.get(view.status, "")),
                    str(view.issue_id or "-"),
                )
                for view in views
            ),
            title=f"Editorial calendar {chosen} ({zone})",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1),
            collapse_padding=True,
        )
        for count in counts:
            kind = "cap" if count.is_cap else "target"
            before = (
                f" ({count.before_setup} before this installation)" if count.before_setup else ""
            )
            err.print(f"{count.publication}: {count.planned} of {kind} {count.target}{before}")
    for count in counts:
        if count.warning:
            warn(count.warning)


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    year: Annotated[
        int,
        typer.Option(
            help=f"Calendar year, {calendar.FIRST_YEAR} to {calendar.LAST_YEAR}.",
            min=calendar.FIRST_YEAR,
            max=calendar.LAST_YEAR,
        ),
    ],
) -> None:
    """Plan the year's newsletters on the monthly default pattern (months with none yet).

    Example: mailer calendar plan --year 2027
    """
    current = state(ctx)
    with current.session() as session:
        added = calendar.plan_newsletters(session, year, current.config.settings)
        current.audit(session, "calendar:plan", str(year), f"{len(added)} newsletters")
    console.print(f"Planned {len(added)} newsletters in {year}")


@app.command("add")
def add_command(
    ctx: typer.Context,
    publication: Annotated[Publication, typer.Argument(help="bulletin or newsletter.")],
    when: Annotated[str, typer.Argument(help="Send time, e.g. 2027-03-11T09:30 (local).")],
) -> None:
    """Add one slot (an extra bulletin, or a newsletter); the others stay as they are.

    Example: mailer calendar add newsletter 2027-06-17T10:00
    """
    current = state(ctx)
    with current.session() as session:
        slot = calendar.add_slot(
            session, publication, _when(when, current), current.config.settings
        )
        current.audit(session, "calendar:add", f"slot {slot.id}", f"{publication} {slot.number}")
    console.print(f"Added slot {slot.id}: {slot.publication} {slot.number}")


@app.command("move")
def move_command(
    ctx: typer.Context,
    slot_id: Annotated[int, typer.Argument(help="Slot id (see `mailer calendar`).")],
    when: Annotated[str, typer.Argument(help="New send time, e.g. 2027-03-11T09:30.")],
) -> None:
    """Move one slot to another time; the others stay as they are.

    Example: mailer calendar move 12 2027-03-11T09:30
    """
    current = state(ctx)
    with current.session() as session:
        slot = calendar.move_slot(session, slot_id, _when(when, current), current.config.settings)
        current.audit(session, "calendar:move", f"slot {slot_id}", when)
    zone = current.config.settings.calendar.timezone
    console.print(
        f"Slot {slot.id} ({slot.publication} {slot.number}) now goes out "
        f"{_local(slot.send_at, zone)}"
    )


@app.command("skip")
def skip_command(
    ctx: typer.Context,
    slot_id: Annotated[int, typer.Argument(help="Slot id (see `mailer calendar`).")],
    note: Annotated[str, typer.Option(help="Why it is skipped.")] = "",
) -> None:
    """Skip one slot: nothing goes out then.

    Example: mailer calendar skip 12 --note "Purdah before the election"
    """
    current = state(ctx)
    with current.session() as session:
        slot = calendar.skip_slot(session, slot_id, note)
        current.audit(session, "calendar:skip", f"slot {slot_id}", note)
    console.print(f"Slot {slot.id} ({slot.publication} {slot.number}) is skipped")


def daemon_command(
    ctx: typer.Context,
    tick: Annotated[float, typer.Option(help="Seconds between two looks at the calendar.")] = 60.0,
) -> None:
    """Run the scheduler: send approved issues at their slots, remind staff, retry.

    An issue that is not approved at its slot is never sent: the slot is marked missed and
    staff are alerted. It also takes bounces in (bounces.receive: the SMTP endpoint or the
    IMAP mailbox) and applies the retention periods daily. Several daemons may run against
    one database: one leads (a lease, [calendar] leader_lease_seconds), the others take
    over when it stops, hangs or is cut off. Faults are waited out; it exits only on a
    signal. With [ops] listen it answers /healthz, /readyz and /metrics.

    Example: mailer daemon
    """
    current = state(ctx)
    daemon = Daemon(current.config, current.engine, tick_seconds=tick)
    from mailer.web import ops  # here: the web stack is slow to import

    probe = ops.listener(ops.Probe(current.config, current.engine, lambda: daemon.state))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        serving = asyncio.create_task(probe.serve()) if probe else None
        try:
            await daemon.run(stop)
        finally:
            if probe is not None and serving is not None:
                probe.should_exit = True
                await serving

    err.print("Daemon starting (Ctrl-C to stop)")
    wait_for_database(current)
    asyncio.run(main())


def wait_for_database(current: State) -> None:
    """Wait (capped back-off, said once) until the database answers at the newest
    migration: a service may start before its database, or while `mailer init` or `mailer
    db upgrade` runs. Tables it cannot manage, or a bad configuration, stop it at once."""
    outage = Outage("the database")
    said: db.SchemaState | None = None
    while True:
        try:
            found = db.schema_state(current.engine)
        except sa.exc.OperationalError as exc:
            pause = outage.failed(exc)
        else:
            outage.recovered()
            if found is db.SchemaState.CURRENT:
                return
            if found is db.SchemaState.UNVERSIONED:
                with current.session():  # says which tables and stops
                    pass
            if found is not said:
                fix = "mailer init" if found is db.SchemaState.FRESH else "mailer db upgrade"
                err.print(f"The database is {found.value}: waiting for `{fix}`")
                said = found
            pause = 5.0
        try:
            time.sleep(pause)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def status_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Whether a daemon leads and ticks, the outbox, the next slot, the last error.

    Exits 1 when no daemon leads or its last tick is older than [ops] tick_stale_seconds.

    Example: mailer status --json
    """
    current = state(ctx)
    with current.session() as session:
        seen = ops.status(session)
    stale = current.config.settings.ops.tick_stale_seconds
    healthy = bool(seen.leader) and seen.tick_age_seconds is not None
    healthy = healthy and (seen.tick_age_seconds or 0) <= stale
    if as_json:
        print_document({**seen.as_json(), "healthy": healthy})
        raise typer.Exit(0 if healthy else 1)
    zone = current.config.settings.calendar.zone

    def when(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if at else "never"

    lead = f"{seen.leader} (term {seen.term}, lease until {when(seen.leader_until)})"
    console.print(f"Leader:        {escape(lead) if seen.leader else '[bold red]none[/]'}")
    age = f" ({seen.tick_age_seconds:.0f} s ago)" if seen.tick_age_seconds is not None else ""
    console.print(f"Last tick:     {when(seen.last_tick_at)}{age}")
    console.print(
        f"Outbox:        {seen.open_deliveries:,} open, {seen.deferred_due:,} deferred and due, "
        f"{seen.in_doubt:,} in doubt"
    )
    if seen.next_slot is not None:
        slot = seen.next_slot
        ready = "approved" if slot.approved else f"[bold]issue {slot.issue}[/]"
        console.print(
            f"Next slot:     {slot.publication} {slot.number} at {when(slot.send_at)} ({ready})"
        )
    else:
        console.print("Next slot:     none planned")
    if seen.last_error:
        console.print(f"Last error:    {when(seen.last_error_at)}: {escape(seen.last_error)}")
    if not healthy:
        err.print("No daemon is keeping the calendar: start `mailer daemon` or `mailer serve`.")
        raise typer.Exit(1)
