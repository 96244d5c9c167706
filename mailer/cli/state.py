"""What every command shares: settings loaded once, the engine, the consoles, clean errors."""

from __future__ import annotations

import difflib
import getpass
import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import sqlalchemy as sa
import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.core import TyperGroup

from mailer import audit, db, settings, staff

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Errors whose message is already written for the person at the terminal, by the module
# that raises them: named, not imported, so a command loads only the modules it uses (an
# error of a module never imported cannot have been raised).
USER_ERRORS: dict[str, tuple[str, ...]] = {
    "mailer.settings": ("ConfigError",),
    "mailer.db": ("SchemaError", "DatabaseLocationError", "MigrationError", "BackupError"),
    "mailer.publications": ("PublicationError",),
    "mailer.organisations": ("OrganisationError",),
    "mailer.importer": ("ImportFileError",),
    "mailer.issuefile": ("IssueFileError",),
    "mailer.issues": ("IssueError",),
    "mailer.rendering": ("RenderError",),
    "mailer.messages": ("HeaderError",),
    "mailer.proofs": ("ProofError",),
    "mailer.transports": ("TransportError",),
    "mailer.events": ("EventError",),
    "mailer.delivery": ("SenderBusy",),
    "mailer.calendar": ("CalendarError",),
    "mailer.staff": ("StaffError",),
    "mailer.privacy": ("SubjectNotFound",),
    "mailer.contributions": ("ContributionError",),
}


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of USER_ERRORS, looking only in the modules loaded."""
    for name, classes in USER_ERRORS.items():
        module = sys.modules.get(name)
        if module is not None and isinstance(exc, tuple(getattr(module, c) for c in classes)):
            return True
    return False


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


@dataclass(frozen=True)
class Lazy:
    """A command of the root, found as ``attribute`` of ``module`` when it is first used: a
    Typer app (a group of commands) or a command function."""

    module: str
    attribute: str

    def load(self, name: str) -> Any:
        found = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(found, typer.Typer):
            command: Any = typer.main.get_group(found)
        else:
            single = typer.Typer(add_completion=False, rich_markup_mode="rich")
            single.command(name)(found)
            command = typer.main.get_command(single)
        command.name = name
        return command


_loaded: dict[str, Any] = {}
USAGE_ERROR: type[Any] = typer.BadParameter.__mro__[1]  # Typer's (vendored) click.UsageError
assert USAGE_ERROR.__name__ == "UsageError", USAGE_ERROR


class MailerGroup(TyperGroup):
    """The root command: its commands loaded when used (``lazy``, filled by ``mailer.cli``);
    known errors become one clear line and exit status 2."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in self.lazy if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            if cmd_name not in _loaded:
                _loaded[cmd_name] = self.lazy[cmd_name].load(cmd_name)
            return _loaded[cmd_name]
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except USAGE_ERROR as exc:  # Typer suggests from the commands loaded only
            names = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if names and "Did you mean" not in exc.message:
                suggested = ", ".join(repr(name) for name in names)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggested}?"
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except sa.exc.OperationalError as exc:
            url = sa.make_url(state(ctx).config.database_url).render_as_string()
            fail(f"cannot use the database {url}: {exc.orig}")
        except Exception as exc:
            if not is_user_error(exc):
                raise
            fail(str(exc))


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
