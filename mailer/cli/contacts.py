"""``mailer contacts …``: import, export and list contacts."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from mailer.cli.output import AsJson, print_document, record, table, warn
from mailer.cli.state import console, err, fail, state
from mailer.contacts import (
    ContactFieldError,
    ContactFilter,
    export_csv,
    link_stated,
    listing,
    parse_role,
)
from mailer.importer import ImportReport, import_contacts, write_problems
from mailer.models import ContactStatus, OrganisationKind, Publication

app = typer.Typer(help="The contact database: import, export, list.", no_args_is_help=True)

_ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "cp1252": "Windows-1252"}


def _check_writable(path: Path, option: str) -> None:
    """Fail now, before any work, if ``path`` cannot be written; leave it as it was."""
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        fail(f"{option} {path}: cannot write: {exc.strerror or exc}")
    if not existed:
        path.unlink()


def _write_report(path: Path, report: ImportReport) -> None:
    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            write_problems(report, handle)
    except OSError as exc:
        done = "checked" if report.dry_run else "imported"
        fail(f"the file was {done}, but the report {path} cannot be written: {exc.strerror or exc}")


def _show(report: ImportReport, limit: int, report_path: Path | None) -> None:
    encoding = _ENCODINGS.get(report.encoding, report.encoding)
    would = "would be " if report.dry_run else ""
    console.print(
        f"{escape(str(report.path))} ({encoding}, {report.rows:,} rows): "
        f"[green]{report.added:,} {would}added[/], {report.updated:,} {would}updated, "
        f"{report.unchanged:,} unchanged, [yellow]{len(report.skipped):,} skipped[/], "
        f"[red]{len(report.rejected):,} rejected[/]"
    )
    for warning in report.warnings:
        warn(warning)
    if report.ignored_columns:
        console.print(f"Ignored columns: {escape(', '.join(report.ignored_columns))}")
    for title, problems in (("Rejected", report.rejected), ("Skipped", report.skipped)):
        if not problems:
            continue
        table(
            (Column("line", justify="right"), "field", "email", "reason"),
            ((str(p.line), p.field, p.email, p.reason) for p in problems[:limit]),
            title=f"{title} rows",
        )
        if len(problems) > limit:
            console.print(f"... and {len(problems) - limit:,} more (all of them: --report FILE)")
    if report_path:
        console.print(f"Every rejected and skipped row: {escape(str(report_path))}")
    if report.dry_run:
        console.print("[bold]Dry run: nothing was written.[/]")


def import_file(
    ctx: typer.Context,
    path: Path,
    *,
    source: str | None,
    dry_run: bool = False,
    update: bool = False,
    report_path: Path | None = None,
) -> ImportReport:
    """Run an import with a progress bar and print what happened."""
    current = state(ctx)
    config = current.config
    if source is not None and len(source) > 200:
        fail("--source: longer than 200 characters")
    if report_path:
        _check_writable(report_path, "--report")
    with (
        current.session() as session,
        Progress(
            TextColumn("Importing {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("lines"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(path.name, total=None)

        def advance(line: int, total: int) -> None:
            progress.update(task, completed=line, total=total)

        report = import_contacts(
            session,
            path,
            zone=config.settings.calendar.zone,
            dry_run=dry_run,
            update=update,
            source=source,
            batch_size=config.settings.contacts_import.batch_size,
            progress=advance,
        )
        if not report.dry_run:
            current.audit(session, "contacts:import", path.name, report.summary())
    if report_path:
        _write_report(report_path, report)
    _show(report, config.settings.contacts_import.max_reported_errors, report_path)
    return report


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8 or Windows-1252).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; write nothing.")
    ] = False,
    update: Annotated[
        bool,
        typer.Option("--update", help="Apply new values to contacts already in the database."),
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(help="Where these contacts came from (default: import:FILENAME)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write every rejected or skipped row to this CSV file."),
    ] = None,
) -> None:
    """Import contacts from a CSV file.

    Columns: email, name, organisation (name or short name), role; optional: lawful_basis
    (consent or legitimate_interest), consented_at, source, publications (bulletin;newsletter
    or none), consent_wording, status (active, disabled or suppressed), unsubscribed
    (publications a new contact starts unsubscribed from, as `contacts export` writes).

    A LEP contact gets the bulletin and the newsletter unless the row says otherwise; an
    external contact needs a lawful_basis and gets the newsletter only. Every rejected row is
    reported with its line number and reason; the valid rows are written in one transaction.
    Importing the same file again changes nothing. Exit status is non-zero only when the file
    itself cannot be read.

    Example: mailer contacts import new-leps.csv --dry-run
    """
    import_file(ctx, file, source=source, dry_run=dry_run, update=update, report_path=report)


@app.command("export")
def export_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="CSV file to write (default: standard output).")
    ] = None,
) -> None:
    """Export every contact as CSV (the same columns `contacts import` reads).

    Cells beginning with = + - or @ are written with a leading ' so that no spreadsheet
    runs them as formulas; `contacts import` takes that ' off again.

    Example: mailer contacts export contacts-2026-11.csv
    """
    current = state(ctx)
    with current.session() as session:
        current.audit(session, "contacts:export", str(file or "(stdout)"), "every contact")
        session.commit()
        if file is None:
            export_csv(session, sys.stdout)
            return
        tmp = file.with_name(file.name + ".part")
        try:
            with tmp.open("w", encoding="utf-8", newline="") as handle:
                written = export_csv(session, handle)
            tmp.replace(file)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            fail(f"{file}: cannot write: {exc.strerror or exc}")
    err.print(f"Exported {written:,} contacts to {escape(str(file))}")


@app.command("list")
def list_command(
    ctx: typer.Context,
    org: Annotated[
        str | None, typer.Option("--org", help="Organisation name or short name.")
    ] = None,
    role: Annotated[str | None, typer.Option("--role", help="Role, e.g. chair or officer.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Part of a name or address.")
    ] = None,
    stated: Annotated[
        bool,
        typer.Option(
            "--stated", help="Only sign-ups with a stated organisation for staff to review."
        ),
    ] = False,
    kind: Annotated[
        OrganisationKind | None,
        typer.Option("--kind", help="The organisation's kind, e.g. lep or government."),
    ] = None,
    status: Annotated[
        ContactStatus | None,
        typer.Option("--status", help="active, disabled or suppressed."),
    ] = None,
    publication: Annotated[
        Publication | None,
        typer.Option("--publication", help="Only contacts subscribed to it (active)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to show (0: all).")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Rows to skip first (a later page).")] = 0,
    as_json: AsJson = False,
) -> None:
    """List contacts in a table (the console's contacts page has the same filters).

    Example: mailer contacts list --org D2N2 --role chair
    Example: mailer contacts list --kind government --publication newsletter --offset 50
    Example: mailer contacts list --stated      # sign-ups waiting for `contacts link`
    """
    try:
        parsed_role = parse_role(role) if role else None
    except ContactFieldError as exc:
        fail(f"--role: {exc}")
    filters = ContactFilter(
        organisation=org,
        role=parsed_role,
        search=search,
        stated=stated,
        kind=kind,
        status=status,
        publication=publication,
    )
    with state(ctx).session() as session:
        rows, total = listing(session, filters, offset=offset, limit=limit or None)
    if as_json:
        print_document(
            {
                "contacts": [
                    {**record(row), "consented_at": row.consented_at or None} for row in rows
                ],
                "shown": len(rows),
                "total": total,
            }
        )
        return
    table(
        ("email", "name", "organisation", "role", "status", "publications"),
        (
            (
                row.email,
                row.name,
                row.organisation
                + (f" (stated: {row.stated_organisation})" if row.stated_organisation else ""),
                row.role.value,
                row.status.value,
                ", ".join(p.value for p in row.publications) or "-",
            )
            for row in rows
        ),
    )
    err.print(f"{len(rows):,} of {total:,} contacts shown")


@app.command("link")
def link_command(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The contact's email address.")],
    organisation: Annotated[
        str | None,
        typer.Argument(help="Organisation (name or short name); default: the one it stated."),
    ] = None,
) -> None:
    """Put a contact in an organisation: staff confirming who a reader works for.

    A public sign-up never joins an organisation by typing its name: it is kept as a
    "stated organisation" (see `contacts list --stated`) until staff link it. Linking a
    contact to a LEP makes it a LEP contact, who gets the bulletin; linking it elsewhere
    ends any subscription that organisation's contacts may not have. Audited.

    Example: mailer contacts link jo@d2n2.example           # to the LEP jo stated
    Example: mailer contacts link jo@d2n2.example "D2N2"
    """
    current = state(ctx)
    with current.session() as session:
        try:
            contact, found = link_stated(session, address, organisation, actor=current.actor)
        except ContactFieldError as exc:
            fail(str(exc))
    console.print(f"Linked {escape(contact.email)} to {escape(found.name)} ({found.kind.value}).")
