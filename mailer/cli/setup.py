"""``mailer init``, ``mailer db …``, ``mailer backup`` and ``mailer config``: setting up,
inspecting and keeping the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.markup import escape

from mailer import db, organisations, publications, settings
from mailer.cli.contacts import import_file
from mailer.cli.output import AsJson, print_document, table
from mailer.cli.state import console, err, fail, state
from mailer.demo import load_content

DEMO_CONTACTS = "demo_contacts.csv"

db_app = typer.Typer(help="The database schema: migrations.", no_args_is_help=True)


def init(
    ctx: typer.Context,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help=f"Also load the fictitious lists/{DEMO_CONTACTS} and the issues and events "
            "in lists/demo/.",
        ),
    ] = False,
) -> None:
    """Create the database (or bring it up to date) and load the organisations.

    Creates and stamps a fresh database, or upgrades an existing one; loads the 38 LEPs
    from lists/leps.csv and external organisations from lists/organisations.csv; checks the
    publication files. Safe to run again: it only adds or updates what changed.

    Example: mailer init --demo
    """
    current = state(ctx)
    config = current.config
    shown_url = sa.make_url(config.database_url).render_as_string()
    found = db.init_schema(current.engine)
    verb = {
        db.SchemaState.FRESH: "created",
        db.SchemaState.BEHIND: "upgraded",
        db.SchemaState.CURRENT: "already up to date:",
    }[found]
    console.print(f"Database {verb} {shown_url} (schema {db.head_revision()})")
    definitions = publications.load_all(config.lists_dir)
    for definition in definitions.values():
        console.print(f"Publication {definition.publication.value}: {definition.name}")
    with current.session() as session:
        loaded = organisations.load_lists(session, config.lists_dir)
    console.print(
        f"Organisations: {loaded.added} added, {loaded.updated} updated, "
        f"{loaded.unchanged} unchanged"
    )
    if demo:
        import_file(ctx, config.lists_dir / DEMO_CONTACTS, source=None)
        with current.session() as session:
            content = load_content(session, config.lists_dir, config.settings)
        issues_created = ", ".join(content.issues_created) or "none new"
        console.print(
            f"Demo content: {content.events_added} events added; issues created: {issues_created}"
        )
        from mailer.cli.web import ensure_demo_staff

        for email, password in ensure_demo_staff(ctx):
            console.print(f"Demo staff login: {email} / {password}")


# Secrets are never shown: only whether each is set (its name in JSON, its label on screen).
_SECRETS = (
    ("secret_key", settings.SECRET_KEY_ENV),
    ("smtp_password", settings.SMTP_PASSWORD_ENV),
    ("imap_password", settings.IMAP_PASSWORD_ENV),
    ("dkim_private_key", "DKIM private key"),
)


def _settings_in_effect(config: settings.Config) -> Iterator[tuple[str, object, str]]:
    """Every documented setting: (section.key, value in effect, meaning)."""
    dumped: Any = config.settings.model_dump(by_alias=True)
    for section, key, help_text in settings.documented_keys():
        value: Any = dumped
        for part in (*section.split("."), key):
            value = value[part]
        if (section, key) == ("database", "url"):
            value = sa.make_url(config.database_url).render_as_string()
        yield f"{section}.{key}", value, help_text


def config_show(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Show every setting in effect, with its help text, and which secrets are set.

    Secrets are never shown, only whether each is set (on stderr, after the table).

    Example: MAILER_CONFIG=/etc/mailer/config.toml mailer config
    """
    config = state(ctx).config
    found = list(_settings_in_effect(config))
    secrets = {name: bool(getattr(config.secrets, name)) for name, _ in _SECRETS}
    if as_json:
        print_document(
            {
                "path": config.path,
                "settings": {key: value for key, value, _ in found},
                "secrets_set": secrets,
            }
        )
        return
    table(
        ("key", "value", "meaning"),
        ((key, str(value), meaning) for key, value, meaning in found),
        title=f"Settings from {config.path}",
    )
    for name, label in _SECRETS:
        err.print(f"{label}: {'set' if secrets[name] else 'not set'}")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply schema migrations (to the newest by default).

    Example: mailer db upgrade
    """
    engine = state(ctx).engine
    before = db.current_revision(engine)
    if before is None and db.schema_state(engine) is db.SchemaState.FRESH:
        err.print("The database is empty: `mailer init` creates it.")
    db.upgrade(engine, revision)
    console.print(f"Schema: {before or 'none'} -> {db.current_revision(engine)}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the schema revision of the database and the newest one available.

    Example: mailer db current
    """
    engine = state(ctx).engine
    console.print(f"database: {db.current_revision(engine) or 'none'}")
    console.print(f"newest:   {db.head_revision()}")


@db_app.command("revision", hidden=True)
def db_revision(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(help="What the migration changes.")],
) -> None:
    """(For developers) write a migration from the models' difference with the database.

    Works only in a git checkout of mailer: it writes into mailer/migrations/versions/,
    and an installed package must never be changed.

    Example: mailer db revision "add issues table"
    """
    db.autogenerate(state(ctx).engine, message)


def backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The backup file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Write a consistent copy of the SQLite database to PATH, even while mailer runs.

    Uses SQLite's online backup API: one snapshot, taken while the site, the daemon and
    senders go on; checked, and readable only by its owner (it holds personal data). On
    PostgreSQL it prints the pg_dump command to use instead and exits with status 1.
    Restore: stop the services, put the copy in place of the database file (remove its
    -wal and -shm files), start them.

    Example: mailer backup /var/backups/mailer/mailer-2027-03-04.db
    """
    url = state(ctx).config.database_url
    shown = sa.make_url(url).render_as_string()
    if db.sqlite_file(url) is None:
        fail(
            f"{shown} is not a SQLite file: back a PostgreSQL database up with pg_dump "
            f"instead:\n  {db.pg_dump_command(url, path)}\n(the password comes from "
            "~/.pgpass or PGPASSWORD; restore with pg_restore, see docs/deploy.md)",
            code=1,
        )
    made = db.backup_sqlite(url, path, force=force)
    console.print(
        f"Backed up {escape(shown)} to {escape(str(made.path))}: {made.tables} tables, "
        f"{made.size / 1_000_000:,.1f} MB (it holds personal data: keep it safe)"
    )
