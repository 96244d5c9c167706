"""``mailer serve`` and ``mailer staff …``: the website with the daemon, and staff accounts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
import uvicorn
from rich.markup import escape
from sqlmodel import Session

from mailer import sessions, staff
from mailer.cli.calendar import wait_for_database
from mailer.cli.output import print_json, table
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
    wait_for_database(current)  # a service may start before its database
    keeper = Daemon(config, current.engine) if daemon else None
    # Here, not at the top: the web stack is the slowest part of every command's start.
    from mailer.web.app import create_app

    app = create_app(
        config,
        current.engine,
        drain=keeper.drain_outbox if keeper else None,
        daemon_state=(lambda: keeper.state) if keeper else (lambda: None),
    )
    host, chosen = web.host, port or web.port
    server = _QuietServer(
        uvicorn.Config(
            app,
            host=host,
            port=chosen,
            log_level="warning",
            lifespan="off",
            # X-Forwarded-* only from the proxies named, never from any client.
            proxy_headers=bool(web.trusted_proxies),
            forwarded_allow_ips=list(web.trusted_proxies) or [],
            server_header=False,
        )
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
    """Give an account a new generated password, unlock it and end its sessions.

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


def _change(ctx: typer.Context, action: str, email: str, change: Callable[[Session], str]) -> None:
    current = state(ctx)
    with current.session() as session:
        try:
            said = change(session)
        except staff.StaffError as exc:
            fail(str(exc))
        current.audit(session, action, email.strip().lower())
    console.print(said)


@staff_app.command("role")
def staff_role(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address.")],
    role: Annotated[StaffRole, typer.Argument(help="editor, approver or admin.")],
) -> None:
    """Give an account another role; its sessions end (it logs in again with the new role).

    Example: mailer staff role jo@lepnetwork.example approver
    """

    def change(session: Session) -> str:
        account = staff.set_role(session, email, role)
        return f"{escape(account.email)} is now {account.role}; its sessions have ended."

    _change(ctx, "staff:role", email, change)


@staff_app.command("disable")
def staff_disable(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address.")],
) -> None:
    """Disable an account at once: it cannot log in and its sessions end (its edits,
    approvals and audit entries stay). `mailer staff enable` undoes it.

    Example: mailer staff disable jo@lepnetwork.example
    """

    def change(session: Session) -> str:
        account = staff.set_disabled(session, email, True)
        return f"Disabled {escape(account.email)}: it cannot log in; its sessions have ended."

    _change(ctx, "staff:disable", email, change)


@staff_app.command("enable")
def staff_enable(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address.")],
) -> None:
    """Let a disabled account log in again (and clear its failed logins).

    Example: mailer staff enable jo@lepnetwork.example
    """

    def change(session: Session) -> str:
        account = staff.set_disabled(session, email, False)
        return f"Enabled {escape(account.email)}."

    _change(ctx, "staff:enable", email, change)


@staff_app.command("unlock")
def staff_unlock(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The account's email address.")],
) -> None:
    """Clear an account's failed logins, so its next login need not wait (the password
    stays; use `mailer staff password` if it may be known to someone else).

    Example: mailer staff unlock jo@lepnetwork.example
    """

    def change(session: Session) -> str:
        account = staff.unlock(session, email)
        return f"Unlocked {escape(account.email)}: its next login need not wait."

    _change(ctx, "staff:unlock", email, change)


@staff_app.command("sessions")
def staff_sessions(
    ctx: typer.Context,
    end_all: Annotated[
        bool, typer.Option("--end-all", help="End every session: everyone logs in again.")
    ] = False,
    end: Annotated[
        str | None, typer.Option(help="End the sessions of this account only.", metavar="EMAIL")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the sessions as JSON.")] = False,
) -> None:
    """List the console's live sessions, or end them (a lost laptop, a suspected leak).

    Example: mailer staff sessions --end jo@lepnetwork.example

    `--end-all --yes` logs everyone out; `--json` lists them for scripts.
    """
    current = state(ctx)
    web = current.config.settings.web
    if end_all or end:
        if not yes:
            if not sys.stdin.isatty():
                fail("ending sessions logs people out: add --yes to confirm")
            whose = "everyone's" if end_all else f"{end}'s"
            typer.confirm(f"End {whose} console sessions?", abort=True)
        with current.session() as session:
            if end_all:
                ended = sessions.end_all(session)
            else:
                try:
                    account = staff.find(session, end or "")
                except staff.StaffError as exc:
                    fail(str(exc))
                assert account.id is not None
                ended = sessions.end_for(session, account.id, sessions.Why.ENDED_BY_ADMIN)
            current.audit(session, "staff:end-sessions", end or "everyone", f"{ended} sessions")
        console.print(f"Ended {ended} session(s).")
        return
    with current.session() as session:
        rows = sessions.live(session, web)
    if as_json:
        print_json(
            [
                {
                    "id": row.id,
                    "email": email,
                    "created_at": row.created_at,
                    "last_seen_at": row.last_seen_at,
                    "user_agent": row.user_agent,
                }
                for row, email in rows
            ]
        )
        return
    table(
        ("id", "email", "since", "last seen", "browser"),
        (
            (
                str(row.id),
                email,
                f"{row.created_at:%Y-%m-%d %H:%M}",
                f"{row.last_seen_at:%Y-%m-%d %H:%M}",
                row.user_agent[:60],
            )
            for row, email in rows
        ),
    )
    err.print(f"{len(rows)} live session(s) (times in UTC)")


@staff_app.command("list")
def staff_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the accounts as JSON.")] = False,
) -> None:
    """List staff accounts.

    Example: mailer staff list
    """
    with state(ctx).session() as session:
        accounts = staff.listing(session)
    if as_json:
        print_json(
            [
                {
                    "email": a.email,
                    "role": a.role,
                    "disabled": a.disabled_at is not None,
                    "last_login_at": a.last_login_at,
                    "waits_until": a.locked_until,
                }
                for a in accounts
            ]
        )
        return
    table(
        ("email", "role", "last login", "next login not before", "disabled"),
        (
            (
                a.email,
                a.role.value,
                f"{a.last_login_at:%Y-%m-%d %H:%M}" if a.last_login_at else "-",
                f"{a.locked_until:%Y-%m-%d %H:%M}" if a.locked_until else "-",
                f"{a.disabled_at:%Y-%m-%d}" if a.disabled_at else "-",
            )
            for a in accounts
        ),
    )


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
