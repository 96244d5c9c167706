"""``mailer subject …``, ``mailer audit`` and ``mailer retention``: data-protection duties."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mailer import audit, bounces, media, privacy
from mailer.cli.output import AsJson, pick, print_document, table
from mailer.cli.state import console, err, fail, state, write_out

subject_app = typer.Typer(
    help="A person's data: a copy of everything held (subject access), or erasure.",
    no_args_is_help=True,
)


@subject_app.command("export")
def export_command(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Write everything held about an address as JSON (subject access).

    Profile, organisation, lawful basis and consent, subscriptions, deliveries, bounces,
    complaints, sign-ups and suppression.

    Example: mailer subject export jo@example.org --out jo.json
    """
    current = state(ctx)
    with current.session() as session:
        data = privacy.export_subject(session, email)
        current.audit(session, "subject:export", _who(data), "subject access copy")
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if write_out(text, out, f"--out {out}"):
        err.print(f"Wrote everything held about {escape(data['email'])} to {escape(str(out))}")


def _who(data: dict[str, object]) -> str:
    contact_id = data.get("contact_id")
    return f"contact {contact_id}" if contact_id else "(no contact)"


@subject_app.command("erase")
def erase_command(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase everything held about an address, keeping only a hashed suppression.

    The contact, subscriptions, deliveries, bounces, sign-ups and captured mail are
    deleted; deliveries stay only as anonymous counts per issue, and the address is kept
    only as a hashed suppression entry, so a later import or sign-up of it is refused.
    Cannot be undone.

    Example: mailer subject erase jo@example.org --yes
    """
    current = state(ctx)
    if not yes:
        if not sys.stdin.isatty():
            fail("erasing cannot be undone: add --yes to confirm")
        typer.confirm(f"Erase everything held about {email}? This cannot be undone", abort=True)
    with current.session() as session:
        removed = privacy.erase_subject(
            session,
            email,
            actor=current.actor,
            media_folder=media.folder_of(current.config.var_dir),
        )
    detail = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(removed.items()) if n)
    console.print(f"Erased: {detail or 'nothing but the suppression was held'}.")
    console.print("The address stays suppressed (as a hash): it will not be imported or mailed.")


_ENTRY_FIELDS = ("id", "at", "actor", "action", "target", "detail")


def audit_command(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option(help="Only this actor (exactly).")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. issue:approve.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only this target, e.g. 'contact 42'.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 100,
    as_json: AsJson = False,
) -> None:
    """Read the audit log: who did what to issues, lists and accounts, and when.

    Actors are staff accounts (console), the user at the command line, readers using
    their own links, the bounce processor and the system (retention).

    Example: mailer audit --action subject:erase
    """
    with state(ctx).session() as session:
        entries = audit.listing(session, actor=actor, action=action, target=target, limit=limit)
    if as_json:
        print_document({"entries": [pick(entry, *_ENTRY_FIELDS) for entry in entries]})
        return
    table(
        ("when (UTC)", "who", "action", "on", "detail"),
        ((f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, e.detail) for e in entries),
    )
    err.print(f"{len(entries)} entries")


def retention_command(ctx: typer.Context) -> None:
    """Apply the retention periods now (the daemon does it daily).

    Delivery details older than privacy.retention_days become counts per issue (the send
    reports keep their totals); raw bounce reports older than bounces.keep_raw_days are
    dropped (the events stay).

    Example: mailer retention
    """
    current = state(ctx)
    settings = current.config.settings
    with current.session() as session:
        reduced = privacy.retain(session, settings.privacy.retention_days)
        dropped = bounces.forget_raw(session, settings.bounces)
    console.print(
        f"{reduced:,} deliveries older than {settings.privacy.retention_days:g} days reduced "
        f"to counts; {dropped:,} raw reports older than {settings.bounces.keep_raw_days:g} "
        "days dropped"
    )
