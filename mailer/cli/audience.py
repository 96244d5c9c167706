"""``mailer audience …``: who a publication would go to right now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column

from mailer import audiences, publications
from mailer.cli.output import AsJson, print_document, table
from mailer.cli.state import err, state
from mailer.contacts import ROLE_LABELS
from mailer.models import OrganisationKind, Publication, Role

app = typer.Typer(help="Audiences of the publications.", no_args_is_help=True)


@app.command("show")
def show_command(
    ctx: typer.Context,
    publication: Annotated[Publication, typer.Argument(help="bulletin or newsletter.")],
    as_json: AsJson = False,
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
    total = sum(item.contacts for item in counts)
    if as_json:
        print_document(
            {"publication": publication, "name": definition.name, "counts": counts, "total": total}
        )
        return
    kinds, roles = list(OrganisationKind), list(Role)
    table(
        ["organisation kind", "role", Column("contacts", justify="right")],
        (
            (
                item.organisation_kind.value.replace("_", " "),
                ROLE_LABELS[item.role].lower(),
                f"{item.contacts:,}",
            )
            for item in sorted(
                counts, key=lambda i: (kinds.index(i.organisation_kind), roles.index(i.role))
            )
        ),
        title=f"{definition.name} ({publication.value})",
    )
    err.print(f"{total:,} recipients")
