"""The ``mailer`` command line: thin commands that parse input, call the domain, show results."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from mailer.cli.logs import LogFormat, configure
from mailer.cli.state import Lazy, MailerGroup, State

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
    from mailer import db
    from mailer.cli.output import settle_wrapping

    ctx.obj = State()
    ctx.call_on_close(ctx.obj.close)
    settle_wrapping()
    configure(log_level.value, log_format)
    if ctx.invoked_subcommand:
        db.application_name = f"mailer-{ctx.invoked_subcommand}"  # seen in pg_stat_activity


# Every command, in the order `mailer --help` lists them, as (module, attribute): a module
# is imported only when its command runs, so `mailer contacts import` loads neither the
# web site nor the renderer (start-up time and memory), and `--help` still lists them all.
MailerGroup.lazy = {
    "init": Lazy("mailer.cli.setup", "init"),
    "config": Lazy("mailer.cli.setup", "config_show"),
    "backup": Lazy("mailer.cli.setup", "backup"),
    "send": Lazy("mailer.cli.sending", "send_command"),
    "worker": Lazy("mailer.cli.sending", "worker_command"),
    "report": Lazy("mailer.cli.reports", "report_command"),
    "daemon": Lazy("mailer.cli.calendar", "daemon_command"),
    "status": Lazy("mailer.cli.calendar", "status_command"),
    "serve": Lazy("mailer.cli.web", "serve_command"),
    "audit": Lazy("mailer.cli.privacy", "audit_command"),
    "retention": Lazy("mailer.cli.privacy", "retention_command"),
    "doctor": Lazy("mailer.cli.doctor", "doctor_command"),
    "db": Lazy("mailer.cli.setup", "db_app"),
    "contacts": Lazy("mailer.cli.contacts", "app"),
    "orgs": Lazy("mailer.cli.orgs", "app"),
    "audience": Lazy("mailer.cli.audience", "app"),
    "issue": Lazy("mailer.cli.sending", "issue_app"),
    "events": Lazy("mailer.cli.events", "app"),
    "contributions": Lazy("mailer.cli.contributions", "app"),
    "calendar": Lazy("mailer.cli.calendar", "app"),
    "staff": Lazy("mailer.cli.web", "staff_app"),
    "bounces": Lazy("mailer.cli.bounces", "app"),
    "subject": Lazy("mailer.cli.privacy", "subject_app"),
}


def main() -> None:
    """Entry point of the ``mailer`` console script."""
    app()
