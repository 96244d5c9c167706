"""``mailer audience …``: who a publication would go to right now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailer import audiences, publications
from mailer.cli.state import console, state
from mailer.contacts import ROLE_LABELS
from mailer.models import OrganisationKind, Publication, Role

app = typer.Typer(help="Audiences of the publications.", no_args_is_help=True)


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
    table = Table(title=f"{definition.name} ({publication.value})", title_justify="left")
    table.add_column("organisation kind / role")
    table.add_column("contacts", justify="right")
    by_kind: dict[OrganisationKind, list[audiences.AudienceCount]] = {}
    for item in counts:
        by_kind.setdefault(item.organisation_kind, []).append(item)
    for kind in OrganisationKind:
        items = by_kind.get(kind)
        if not items:
            continue
        table.add_row(
            f"[bold]{kind.value.replace('_', ' ')}[/]",
            f"[bold]{sum(i.contacts for i in items):,}[/]",
        )
        for item in sorted(items, key=lambda i: list(Role).index(i.role)):
            table.add_row(f"  {ROLE_LABELS[item.role].lower()}", f"{item.contacts:,}")
    total = sum(item.contacts for item in counts)
    table.add_section()
    table.add_row("[bold]total[/]", f"[bold]{total:,}[/]")
    console.print(table)
    console.print(f"{total:,} recipients")
