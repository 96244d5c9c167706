"""The ``mailer`` command line: thin commands that parse input, call the domain, show results."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from mailer import db
from mailer.cli import (
    audience,
    bounces,
    calendar,
    contacts,
    contributions,
    doctor,
    events,
    issues,
    orgs,
    privacy,
    reports,
    sending,
    setup,
    web,
)
from mailer.cli.logs import LogFormat, configure
from mailer.cli.output import settle_wrapping
from mailer.cli.state import MailerGroup, State

app = typer.Typer(
    cls=MailerGroup,
    help=(
        "The LEP Network's bulletin and e-newsletter engine.\n\n"
        "Reads ./config.toml, or the file named by MAILER_CONFIG.\n\n"
        "Example: mailer init --demo && mailer audience show bulletin"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="Least important log records shown.")
    ] = LogLevel.INFO,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="text (one line each) or json (one object a line)."),
    ] = LogFormat.TEXT,
) -> None:
    ctx.obj = State()
    ctx.call_on_close(ctx.obj.close)
    settle_wrapping()
    configure(log_level.value, log_format)
    if ctx.invoked_subcommand:
        db.application_name = f"mailer-{ctx.invoked_subcommand}"  # seen in pg_stat_activity


setup.register(app)
app.add_typer(contacts.app, name="contacts")
app.add_typer(orgs.app, name="orgs")
app.add_typer(audience.app, name="audience")
app.add_typer(issues.app, name="issue")
app.add_typer(events.app, name="events")
app.add_typer(contributions.app, name="contributions")
sending.register(app, issues.app)
reports.register(app)
app.add_typer(calendar.app, name="calendar")
app.command("daemon")(calendar.daemon_command)
app.command("status")(calendar.status_command)
app.command("serve")(web.serve_command)
app.add_typer(web.staff_app, name="staff")
app.add_typer(bounces.app, name="bounces")
app.add_typer(privacy.subject_app, name="subject")
app.command("audit")(privacy.audit_command)
app.command("retention")(privacy.retention_command)
app.command("doctor")(doctor.doctor_command)


def main() -> None:
    """Entry point of the ``mailer`` console script."""
    app()
