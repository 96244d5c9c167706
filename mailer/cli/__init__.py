"""The ``mailer`` command line: thin commands that parse input, call the domain, show results."""

from __future__ import annotations

import logging

import typer
from rich.logging import RichHandler

from mailer.cli import (
    audience,
    bounces,
    calendar,
    contacts,
    doctor,
    events,
    issues,
    orgs,
    privacy,
    sending,
    setup,
    web,
)
from mailer.cli.state import MailerGroup, State, err

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


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = State()
    ctx.call_on_close(ctx.obj.close)
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, markup=False)],
    )
    for noisy in ("alembic", "apscheduler", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


setup.register(app)
app.add_typer(contacts.app, name="contacts")
app.add_typer(orgs.app, name="orgs")
app.add_typer(audience.app, name="audience")
app.add_typer(issues.app, name="issue")
app.add_typer(events.app, name="events")
sending.register(app, issues.app)
app.add_typer(calendar.app, name="calendar")
app.command("daemon")(calendar.daemon_command)
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
