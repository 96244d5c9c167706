"""``mailer bounces …``: the bounce endpoint, the bounce mailbox, and the bounce log."""

from __future__ import annotations

import imaplib
import signal
import threading
from typing import Annotated

import typer
from rich.markup import escape

from mailer import bounces, notices, tokens
from mailer.cli.output import AsJson, pick, print_document, table
from mailer.cli.state import State, console, err, fail, state
from mailer.transports import from_config


def intake(current: State, source: str) -> bounces.Intake:
    """The bounce intake of this installation, telling staff of disabled contacts."""
    config = current.config
    return bounces.Intake(
        current.engine,
        tokens.TokenSigner(tokens.load_key(config.secrets.secret_key, config.var_dir)),
        config.settings.bounces,
        source=source,
        tell=notices.tell_disabled(config, lambda: from_config(config, current.engine)),
    )


def _verdict(handled: bounces.Handled) -> str:
    who = f"contact {handled.contact_id}" if handled.contact_id else "an unknown address"
    if handled.verdict is bounces.Verdict.UNSUBSCRIBED:
        return f"{who} unsubscribed by email"
    if handled.report.kind is None:
        return "not a bounce or complaint: ignored"
    return f"{handled.report.kind} for {who}: {handled.verdict}"


app = typer.Typer(
    help="Bounces and complaints: receive them, list them, re-enable a disabled contact.",
    no_args_is_help=True,
)


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address (default: bounces.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: bounces.port).")] = None,
) -> None:
    """Run the SMTP bounce endpoint until Ctrl-C.

    It accepts mail for the VERP bounce addresses (bounces+TOKEN@network.domain, the
    envelope sender of every copy sent) and for bounces@, abuse@ and fbl@ (complaint
    reports), and records each. A report carrying our token acts on the copy's reader: a
    permanent failure or a complaint suppresses the address at once, temporary failures
    add to its score; one without it is recorded for staff and changes nothing. Mail to
    unsubscribe@ (the mailto in every message's List-Unsubscribe) whose subject carries a
    reader's token unsubscribes that reader. Point the relay's bounce route (or the bounce
    domain's MX) at it. `mailer daemon` runs it too when bounces.receive = "smtp".

    Example: mailer bounces serve --port 2525
    """
    current = state(ctx)
    config = current.config
    with current.session():
        pass  # the database must be initialised and current
    process = intake(current, "smtp")

    def logged(raw: bytes, recipients: list[str]) -> bounces.Handled:
        handled = process(raw, recipients)
        err.print(f"Report to {escape(', '.join(recipients))}: {escape(_verdict(handled))}")
        return handled

    settings = config.settings.bounces
    where = (host or settings.host, port or settings.port)
    controller = bounces.endpoint(where[0], where[1], config.settings.network.domain, logged)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        fail(f"cannot listen on {where[0]}:{where[1]}: {exc}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    err.print(
        f"Bounce endpoint on {where[0]}:{where[1]} for bounces+…@"
        f"{config.settings.network.domain} (Ctrl-C to stop)"
    )
    try:
        stop.wait()
    finally:
        controller.stop()
        err.print("Bounce endpoint stopped")


@app.command("fetch")
def fetch_command(ctx: typer.Context) -> None:
    """Read the bounce mailbox over IMAP once: record every report, then delete it.

    The mailbox is bounces.imap_host, imap_port, imap_tls, imap_username and imap_folder;
    the password comes from MAILER_IMAP_PASSWORD. A message is deleted only once recorded.
    `mailer daemon` fetches every fetch_minutes when bounces.receive = "imap".

    Example: MAILER_IMAP_PASSWORD=… mailer bounces fetch
    """
    current = state(ctx)
    config = current.config
    settings = config.settings.bounces
    if not settings.imap_host or not settings.imap_username:
        fail("[bounces] imap_host and imap_username are not set in the configuration")
    with current.session():
        pass
    process = intake(current, "imap")
    verdicts: dict[str, int] = {}

    def counted(raw: bytes, recipients: list[str]) -> bounces.Handled:
        handled = process(raw, recipients)
        key = str(handled.verdict)
        verdicts[key] = verdicts.get(key, 0) + 1
        return handled

    try:
        done = bounces.fetch(settings, config.secrets.imap_password, counted)
    except (OSError, imaplib.IMAP4.error) as exc:
        fail(f"the bounce mailbox {settings.imap_username}@{settings.imap_host}: {exc}")
    detail = ", ".join(f"{n} {verdict}" for verdict, n in sorted(verdicts.items()))
    console.print(f"{done} messages read{': ' + detail if detail else ''}")


_EVENT_FIELDS = (
    "id",
    "created_at",
    "kind",
    "contact_id",
    "delivery_id",
    "code",
    "source",
    "diagnostic",
)


@app.command("list")
def list_command(
    ctx: typer.Context,
    contact: Annotated[int | None, typer.Option(help="Only this contact's.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    as_json: AsJson = False,
) -> None:
    """List bounces and complaints, newest first (the raw reports: the contact's page).

    Example: mailer bounces list --limit 20
    """
    with state(ctx).session() as session:
        events = bounces.listing(session, contact_id=contact, limit=limit)
    if as_json:
        print_document({"events": [pick(event, *_EVENT_FIELDS) for event in events]})
        return
    table(
        ("id", "when (UTC)", "kind", "contact", "code", "via", "diagnostic"),
        (
            (
                str(event.id),
                f"{event.created_at:%Y-%m-%d %H:%M}",
                event.kind.value,
                str(event.contact_id or "unknown"),
                str(event.code or ""),
                event.source,
                event.diagnostic,
            )
            for event in events
        ),
    )
    err.print(f"{len(events)} events")


@app.command("enable")
def enable_command(
    ctx: typer.Context, contact_id: Annotated[int, typer.Argument(help="Contact id.")]
) -> None:
    """Re-enable a contact disabled by repeated bounces; its score starts again from 0.

    Example: mailer bounces enable 42
    """
    current = state(ctx)
    with current.session() as session:
        try:
            bounces.reenable(session, contact_id, actor=current.actor)
        except bounces.NotDisabled as exc:
            fail(str(exc))
    console.print(f"Contact {contact_id} is active again.")
