"""``mailer audience …``: who a publication would go to right now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailer import audiences, publications
from mailer.cli.state import console, state
from mailer.models import OrganisationKind, Publication, Role

app = typer.Typer(help="Audiences of the publications.", no_args_is_help=True)

_SHORT_ROLE = {
    Role.CHAIR: "chair",
    Role.CHIEF_EXECUTIVE: "chief exec",
    Role.OFFICER: "officer",
    Role.COMMUNICATIONS_LEAD: "comms lead",
    Role.BOARD_MEMBER: "board",
    Role.STAKEHOLDER: "stakeholder",
}


@app.command("show")
def show_command(
    ctx: typer.Context,
    publication: Annotated[Publication, typer.Argument(help="bulletin or newsletter.")],
) -> None:
    """Count the audience of a publication by organisation kind and role.

    Only active, subscribed, unsuppressed contacts count; the bulletin's audience is
    LEP contacts only, whatever the list files say.

    Example: mailer audience show bulletin
    """
    config = state(ctx).config
    definition = publications.load(config.lists_dir, publication)
    with state(ctx).session() as session:
        counts = audiences.breakdown(session, publication, definition.audience)
    grid: dict[OrganisationKind, dict[Role, int]] = {}
    for item in counts:
        grid.setdefault(item.organisation_kind, {})[item.role] = item.contacts
    roles = [r for r in Role if any(r in row for row in grid.values())]
    table = Table(title=f"{definition.name} ({publication.value})", title_justify="left")
    table.add_column("organisation kind")
    for role in roles:
        table.add_column(_SHORT_ROLE[role], justify="right")
    table.add_column("total", justify="right", style="bold")
    for kind in OrganisationKind:
        if kind not in grid:
            continue
        row = grid[kind]
        table.add_row(
            kind.value.replace("_", " "),
            *(f"{row.get(role, 0):,}" for role in roles),
            f"{sum(row.values()):,}",
        )
    total = sum(item.contacts for item in counts)
    table.add_section()
    table.add_row(
        "total",
        *(f"{sum(r.get(role, 0) for r in grid.values()):,}" for role in roles),
        f"{total:,}",
    )
    console.print(table)
    console.print(f"{total:,} recipients")
