"""``mailer serve`` and ``mailer staff …``: the website with the daemon, and staff accounts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
import uvicorn
from rich.markup import escape
from rich.table import Table

from mailer import staff
from mailer.cli.state import console, err, fail, state
from mailer.daemon import Daemon
from mailer.models import StaffRole

staff_app = typer.Typer(help="Staff accounts for the console.", no_args_is_help=True)
DEMO_STAFF = (
    ("editor@lepnetwork.example", StaffRole.EDITOR, "demo-editor-password"),
    ("approver@lepnetwork.example", StaffRole.APPROVER, "demo-approver-password"),
)


class _QuietServer(uvicorn.Server):
    """Uvicorn, stopped by our own signal handlers: Ctrl-C ends with exit status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        err.print("Stopping the site and the daemon")
        self.should_exit = True


def serve_command(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port (default: web.port).")] = None,
    daemon: Annotated[
        bool, typer.Option("--daemon/--no-daemon", help="Also run the scheduler daemon.")
    ] = True,
) -> None:
    """Serve the website (public pages and staff console) and run the daemon in one process.

    Example: mailer serve --port 8080
    """
    current = state(ctx)
    config = current.config
    web = config.settings.web
    with current.session():
        pass  # the database must be initialised and current
    keeper = Daemon(config, current.engine) if daemon else None
    # Here, not at the top: the web stack is the slowest part of every command's start.
    from mailer.web.app import create_app

    app = create_app(config, current.engine, drain=keeper.drain_outbox if keeper else None)
    host, chosen = web.host, port or web.port
    server = _QuietServer(
        uvicorn.Config(app, host=host, port=chosen, log_level="warning", lifespan="off")
    )
    err.print(f"Site:    http://{host}:{chosen}/  (links in emails use {web.base_url})")
    err.print(f"Console: http://{host}:{chosen}/staff")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        tasks = [asyncio.create_task(server.serve())]
        if keeper is not None:
            tasks.append(asyncio.create_task(keeper.run(stop)))
        await tasks[0]  # uvicorn handles Ctrl-C and returns
        stop.set()
        await asyncio.gather(*tasks[1:])

    asyncio.run(main())


@staff_app.command("add")
def staff_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The staff member's email address.")],
    role: Annotated[StaffRole, typer.Option(help="editor, approver or admin.")] = StaffRole.EDITOR,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a staff account; prints a generated password unless one comes on stdin.

    Example: mailer staff add jo@lepnetwork.example --role approver
    """
    password = sys.stdin.readline().rstrip("\n") if password_stdin else staff.generate_password()
    current = state(ctx)
    with current.session() as session:
        try:
            account = staff.add(session, email, role, password)
        except staff.StaffError as exc:
            fail(str(exc))
        current.audit(session, "staff:add", account.email, account.role)
    console.print(f"Added {escape(account.email)} ({account.role})")
    if not password_stdin:
        console.print(f"Password: {escape(password)}  (give it to them; they keep it secret)")


@staff_app.command("password")
def staff_password(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address.")],
) -> None:
    """Give an account a new generated password (and unlock it).

    Example: mailer staff password jo@lepnetwork.example
    """
    password = staff.generate_password()
    current = state(ctx)
    with current.session() as session:
        try:
            staff.set_password(session, email, password)
        except staff.StaffError as exc:
            fail(str(exc))
        current.audit(session, "staff:password", email)
    console.print(f"New password for {escape(email)}: {escape(password)}")


@staff_app.command("list")
def staff_list(ctx: typer.Context) -> None:
    """List staff accounts.

    Example: mailer staff list
    """
    with state(ctx).session() as session:
        accounts = staff.listing(session)
    table = Table()
    for column in ("email", "role", "last login", "locked until"):
        table.add_column(column)
    for account in accounts:
        table.add_row(
            escape(account.email),
            account.role.value,
            f"{account.last_login_at:%Y-%m-%d %H:%M}" if account.last_login_at else "-",
            f"{account.locked_until:%Y-%m-%d %H:%M}" if account.locked_until else "-",
        )
    console.print(table)


def ensure_demo_staff(ctx: typer.Context) -> list[tuple[str, str]]:
    """The demo accounts (created once), with their passwords, for `init --demo`."""
    made = []
    with state(ctx).session() as session:
        known = {a.email for a in staff.listing(session)}
        for email, role, password in DEMO_STAFF:
            if email not in known:
                staff.add(session, email, role, password)
            made.append((email, password))
    return made
