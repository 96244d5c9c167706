"""What every command shares: settings loaded once, the engine, the consoles, clean errors."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.core import TyperGroup

from mailer import audit, db, settings, staff
from mailer.calendar import CalendarError
from mailer.contributions import ContributionError
from mailer.delivery import SenderBusy
from mailer.events import EventError
from mailer.importer import ImportFileError
from mailer.issuefile import IssueFileError
from mailer.issues import IssueError
from mailer.messages import HeaderError
from mailer.organisations import OrganisationError
from mailer.privacy import SubjectNotFound
from mailer.proofs import ProofError
from mailer.publications import PublicationError
from mailer.rendering import RenderError
from mailer.staff import StaffError
from mailer.transports import TransportError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Errors whose message is already written for the person at the terminal.
USER_ERRORS: tuple[type[Exception], ...] = (
    settings.ConfigError,
    db.SchemaError,
    db.DatabaseLocationError,
    db.MigrationError,
    db.BackupError,
    PublicationError,
    OrganisationError,
    ImportFileError,
    IssueFileError,
    IssueError,
    RenderError,
    HeaderError,
    ProofError,
    TransportError,
    EventError,
    SenderBusy,
    CalendarError,
    StaffError,
    SubjectNotFound,
    ContributionError,
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error (no traceback) and stop with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def write_out(text: str, path: Path | None, label: str) -> bool:
    """Write ``text`` to ``path``, or to stdout without one; whether a file was written.

    A file that cannot be written stops the command with an error naming ``label``.
    """
    if path is None:
        sys.stdout.write(text)
        return False
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"{label}: cannot write: {exc.strerror or exc}")
    return True


class MailerGroup(TyperGroup):
    """The root command: known errors become one clear line and exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            fail(str(exc))
        except sa.exc.OperationalError as exc:
            url = sa.make_url(state(ctx).config.database_url).render_as_string()
            fail(f"cannot use the database {url}: {exc.orig}")


class State:
    """Loaded lazily, so ``--help`` works without a configuration file."""

    @cached_property
    def config(self) -> settings.Config:
        return settings.load()

    @cached_property
    def actor(self) -> str:
        """Who is at the terminal, for the audit log."""
        try:
            return staff.operator(getpass.getuser())
        except (KeyError, OSError):
            return staff.operator(f"uid {os.getuid()}")

    def audit(self, session: Session, action: str, target: str = "", detail: str = "") -> None:
        """Record what this command changed, committed with the change."""
        audit.record(session, self.actor, action, target, detail)

    @cached_property
    def engine(self) -> Engine:
        return db.create_engine(self.config.database_url, echo=self.config.settings.database.echo)

    def close(self) -> None:
        """Release the database connections, if any were opened."""
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on an initialised, current database; commits on success."""
        current = db.schema_state(self.engine)
        if current is db.SchemaState.FRESH:
            fail("the database is empty: run `mailer init` first")
        if current is db.SchemaState.BEHIND:
            fail("the database schema is older than this version: run `mailer db upgrade`")
        with db.session_scope(self.engine) as session:
            yield session


def state(ctx: typer.Context) -> State:
    """The shared state of this invocation."""
    found = ctx.find_object(State)
    if found is None:
        found = ctx.ensure_object(State)
    return found
