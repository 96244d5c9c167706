"""``mailer orgs …``: the organisations contacts belong to."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column

from mailer import organisations
from mailer.cli.output import AsJson, pick, print_document, table
from mailer.cli.state import console, err, fail, state
from mailer.models import OrganisationKind

app = typer.Typer(
    help="Organisations: the 38 LEPs and external stakeholders.", no_args_is_help=True
)

EXTERNAL_KINDS = [k.value for k in OrganisationKind if k is not OrganisationKind.LEP]
_COLUMNS = ("name", "short name", "kind", "board group")
_FIELDS = ("id", "name", "short_name", "kind", "board_group", "website", "domains")


@app.command("list")
def list_command(
    ctx: typer.Context,
    kind: Annotated[
        OrganisationKind | None, typer.Option(help="Only organisations of this kind.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List organisations with their number of contacts.

    Example: mailer orgs list --kind lep
    """
    with state(ctx).session() as session:
        found = organisations.summaries(session, kind)
    if as_json:
        print_document(
            {
                "organisations": [
                    {**pick(s.organisation, *_FIELDS), "contacts": s.contacts} for s in found
                ]
            }
        )
        return
    table(
        [*_COLUMNS, Column("contacts", justify="right")],
        (
            (
                s.organisation.name,
                s.organisation.short_name or "",
                s.organisation.kind.value,
                s.organisation.board_group or "",
                f"{s.contacts:,}",
            )
            for s in found
        ),
    )
    leps = sum(1 for s in found if s.organisation.kind is OrganisationKind.LEP)
    err.print(f"{len(found)} organisations ({leps} LEPs)")


@app.command("add")
def add_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The organisation's full name.")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(EXTERNAL_KINDS)}.")],
    short_name: Annotated[str | None, typer.Option(help="A short name used in imports.")] = None,
    website: Annotated[str | None, typer.Option(help="Its website.")] = None,
) -> None:
    """Add an external organisation (the LEPs come only from lists/leps.csv).

    Example: mailer orgs add "Federation of Small Businesses" --kind business_representative
    --short-name FSB
    """
    if kind not in EXTERNAL_KINDS:
        if kind == OrganisationKind.LEP:
            fail("--kind lep: LEPs are listed in lists/leps.csv (then run `mailer init`)")
        fail(f"--kind: unknown kind {kind!r} (expected one of: {', '.join(EXTERNAL_KINDS)})")
    current = state(ctx)
    with current.session() as session:
        org = organisations.add(
            session, name, OrganisationKind(kind), short_name=short_name, website=website
        )
        current.audit(session, "organisation:add", org.name, org.kind.value)
    console.print(f"Added {escape(org.name)} ({org.kind.value})")
