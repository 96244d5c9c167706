"""``mailer contributions …``: the queue of what LEPs sent in for the bulletin."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.markup import escape

from mailer import contributions, issues, tokens
from mailer.cli.output import AsJson, print_document, table
from mailer.cli.state import State, console, err, fail, state
from mailer.contributions import Entry
from mailer.models import ContributionStatus
from mailer.transports import from_config

app = typer.Typer(
    help=(
        "What LEP contacts sent in for the bulletin (the link at the foot of every "
        "bulletin): list, show, accept into the next bulletin's draft, decline.\n\n"
        "Example: mailer contributions list --status received"
    ),
    no_args_is_help=True,
)


def _record(entry: Entry, current: State) -> dict[str, object]:
    row = entry.contribution
    proposal = entry.proposal
    return {
        "id": row.id,
        "received_at": row.created_at,
        "organisation": entry.organisation,
        "contact": entry.contact_name,
        "kind": row.kind,
        "headline": row.headline,
        "text": row.body,
        "link": row.link,
        "image": row.image_name,
        "image_alt": row.image_alt,
        "event_on": row.event_on,
        "event_time": row.event_time,
        "event_place": row.event_place,
        "status": row.status,
        "in_time": proposal.in_time if row.status is ContributionStatus.RECEIVED else None,
        "deadline": proposal.deadline,
        "proposed_for": proposal.slot.number if proposal.slot else None,
        "issue_id": row.issue_id,
        "event_id": entry.event_id,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "decline_reason": row.decline_reason,
    }


def _for(entry: Entry) -> str:
    row = entry.contribution
    if row.status is ContributionStatus.RECEIVED:
        slot = entry.proposal.slot
        when = "in time" if entry.proposal.in_time else "LATE"
        return f"{slot.number if slot else 'no open slot'} ({when})"
    if row.issue_id:
        return f"issue {row.issue_id}"
    return f"event {entry.event_id}" if entry.event_id else "-"


@app.command("list")
def list_command(
    ctx: typer.Context,
    status: Annotated[
        ContributionStatus | None, typer.Option(help="Only received, accepted or declined.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The queue, newest first, with the bulletin each is proposed for and whether it
    arrived before that bulletin's content deadline.

    Example: mailer contributions list --status received --json
    """
    current = state(ctx)
    zone = current.config.settings.calendar.zone
    with current.session() as session:
        found = contributions.listing(session, status)
    if as_json:
        print_document({"contributions": [_record(e, current) for e in found]})
        return
    table(
        ("id", "received", "LEP", "kind", "headline", "status", "for"),
        (
            (
                str(e.contribution.id),
                issues.slot_label(e.contribution.created_at, zone),
                e.organisation,
                e.contribution.kind.label,
                e.contribution.headline,
                e.contribution.status.value,
                _for(e),
            )
            for e in found
        ),
    )
    err.print(f"{len(found)} contributions")


@app.command("show")
def show_command(
    ctx: typer.Context,
    contribution_id: Annotated[int, typer.Argument(help="Its number (contributions list).")],
    as_json: AsJson = False,
) -> None:
    """One contribution in full.

    Example: mailer contributions show 12
    """
    current = state(ctx)
    with current.session() as session:
        entry = contributions.entry(session, contribution_id)
    record = _record(entry, current)
    if as_json:
        print_document({"contribution": record})
        return
    zone = current.config.settings.calendar.zone
    row = entry.contribution
    console.print(f"[bold]{escape(row.headline)}[/] ({row.kind.label})")
    console.print(f"From {escape(entry.contact_name)}, {escape(entry.organisation)}")
    console.print(f"Received {issues.slot_label(row.created_at, zone)}; {row.status.value}")
    console.print(f"For: {escape(_for(entry))}")
    if row.decline_reason:
        console.print(f"Reason: {escape(row.decline_reason)}")
    for label, value in (
        ("Link", row.link),
        ("Image", row.image_name),
        (
            "Event",
            f"{row.event_on} {row.event_time or ''} {row.event_place or ''}".strip()
            if row.event_on
            else None,
        ),
    ):
        if value:
            console.print(f"{label}: {escape(value)}")
    console.print()
    console.print(escape(row.body), soft_wrap=True)


def tell(current: State, only: int | None = None) -> int:
    """Send the emails owed to contributors (all, or about contribution ``only``)."""
    config = current.config
    signer = tokens.TokenSigner(tokens.load_key(config.secrets.secret_key, config.var_dir))
    return asyncio.run(
        contributions.send_notices(
            current.engine, config, signer, lambda: from_config(config, current.engine), only=only
        )
    )


@app.command("accept")
def accept_command(
    ctx: typer.Context,
    contribution_id: Annotated[int, typer.Argument(help="Its number (contributions list).")],
    into: Annotated[
        str | None,
        typer.Option(
            "--into", help="The bulletin number to put it in (default: the one proposed)."
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(help="Your staff account's address (default: you at the terminal)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Accept a contribution: an item at the end of its section in the draft of the
    proposed bulletin (made from the skeleton if there is none yet), or for an event an
    entry in the events diary. Edit it there like any item.

    Example: mailer contributions accept 12 --into 2027/05
    """
    current = state(ctx)
    settings = current.config.settings
    with current.session() as session:
        done = contributions.accept(
            session, contribution_id, by=by or current.actor, settings=settings, into=into
        )
        issue_id = done.issue.id if done.issue else None
        event_id = done.event.id if done.event else None
    if as_json:
        print_document(
            {
                "contribution": contribution_id,
                "issue_id": issue_id,
                "event_id": event_id,
                "note": done.note,
            }
        )
        return
    console.print(f"Accepted contribution {contribution_id}: {escape(done.note)}")
    if issue_id:
        console.print(f"Edit it: mailer issue export {issue_id} (or the console's editor)")


@app.command("decline")
def decline_command(
    ctx: typer.Context,
    contribution_id: Annotated[int, typer.Argument(help="Its number (contributions list).")],
    reason: Annotated[str, typer.Option(help="Why, in a sentence: emailed to its sender.")],
    by: Annotated[
        str | None,
        typer.Option(help="Your staff account's address (default: you at the terminal)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: AsJson = False,
) -> None:
    """Decline a contribution; its sender is emailed the reason at once.

    Example: mailer contributions decline 12 --reason "Already covered in issue 2027/04" --yes
    """
    current = state(ctx)
    if not yes:
        if not sys.stdin.isatty():
            fail("declining emails its sender: add --yes to confirm")
        typer.confirm(f"Decline contribution {contribution_id} and email the reason?", abort=True)
    with current.session() as session:
        contributions.decline(session, contribution_id, reason=reason, by=by or current.actor)
    sent = tell(current, contribution_id)
    if as_json:
        print_document({"contribution": contribution_id, "emailed": bool(sent)})
        return
    console.print(
        f"Declined contribution {contribution_id}; "
        + (
            "its sender was emailed the reason."
            if sent
            else "the email could not be sent now: the daemon tries again (`contributions notify`)."
        )
    )


@app.command("notify")
def notify_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Send the emails owed to contributors now: receipts, declines, and "your item is in
    today's bulletin" once an issue carrying it was sent (the daemon does this at every
    tick).

    Example: mailer contributions notify
    """
    current = state(ctx)
    with current.session():
        pass  # the database is there and current
    sent = tell(current)
    if as_json:
        print_document({"sent": sent})
        return
    console.print(f"{sent} emails sent to contributors")
