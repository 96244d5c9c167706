"""``mailer issue …``: compose, check, preview, test and approve issues."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column

from mailer import editorial, issuefile, issues, lint, messages, proofs, publications, tokens
from mailer.cli.output import AsJson, pick, print_document, table
from mailer.cli.state import State, console, err, fail, state, write_out
from mailer.contacts import ContactFieldError, normalise_email
from mailer.models import Issue, IssueStatus, Publication
from mailer.rendering import RenderedIssue, Renderer
from mailer.transports import from_config

app = typer.Typer(help="Issues: compose, preview, lint, test, approve.", no_args_is_help=True)


def _renderer(current: State) -> Renderer:
    config = current.config
    return Renderer.for_config(config)


def _signer(current: State) -> tokens.TokenSigner:
    config = current.config
    return tokens.TokenSigner(tokens.load_key(config.secrets.secret_key, config.var_dir))


def _rendered(
    current: State, issue: Issue
) -> tuple[RenderedIssue, publications.PublicationDefinition]:
    definition = publications.load(current.config.lists_dir, issue.publication)
    with current.session() as session:
        return issues.rendering(session, issue, _renderer(current), definition), definition


def _load(current: State, issue_id: int) -> Issue:
    with current.session() as session:
        return issues.get(session, issue_id)


def _findings(current: State, issue: Issue, rendered: RenderedIssue) -> list[lint.Finding]:
    with current.session() as session:
        return lint.lint(
            issues.content(session, issue, current.config.settings.calendar.zone), rendered
        )


def _who(current: State, given: str | None, doing: str) -> str:
    """The person named by ``--by``, or the operating-system user, said so on stderr."""
    if given and given.strip():
        return given.strip()
    err.print(
        f"{doing} as {escape(current.actor)}, the operating-system user "
        "(give --by EMAIL to name yourself)"
    )
    return current.actor


BY_HELP = "Who you are (email); default: the operating-system user. Recorded in the audit log."


@app.command("new")
def new_command(
    ctx: typer.Context,
    publication: Annotated[Publication, typer.Argument(help="bulletin or newsletter.")],
    slot: Annotated[
        str | None,
        typer.Option(
            help="The send time of an open slot, e.g. 2027-03-04T09:30 (calendar time zone); "
            "default: the next open slot. See `mailer calendar`."
        ),
    ] = None,
) -> None:
    """Print a ready-to-edit issue file for an open slot; its number is the slot's.

    Its placeholder texts are lint errors: replace them before approving.

    Example: mailer issue new bulletin --slot 2027-03-04T09:30 > bulletin.md
    """
    current = state(ctx)
    settings = current.config.settings
    zone = settings.calendar.zone
    slot_at = issuefile.parse_slot(slot, zone, "--slot") if slot else None
    with current.session() as session:
        document = editorial.new_draft(session, publication, slot_at=slot_at, settings=settings)
    sys.stdout.write(issuefile.dump(document, zone))


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Issue file: front matter and ## sections.")],
    issue_id: Annotated[
        int | None, typer.Option("--id", help="Replace the content of this draft.")
    ] = None,
    editor: Annotated[str | None, typer.Option("--by", help=BY_HELP)] = None,
) -> None:
    """Create an issue (or replace a draft's content) from an issue file.

    Its `slot:` must be the time of an open slot of its publication (its number is then
    the slot's); without one, its `number:` names the slot.

    Example: mailer issue import bulletin.md --by editor@lepnetwork.example
    """
    current = state(ctx)
    settings = current.config.settings
    document = issuefile.read(file, settings.calendar.zone)
    with current.session() as session:
        who = _who(current, editor, "Editing")
        issue = editorial.save(session, document, issue_id=issue_id, editor=who, settings=settings)
        sections = len(issues.document(session, issue).sections)
        slot = issues.slot_label(issue.slot_at, settings.calendar.zone)
    verb = "Updated" if issue_id else "Created"
    console.print(
        f"{verb} issue {issue.id}: {issue.publication} {issue.number}, "
        f"{sections} sections, {issue.status}, slot {slot}"
    )


@app.command("export")
def export_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    file: Annotated[Path | None, typer.Argument(help="File to write (default: stdout).")] = None,
) -> None:
    """Write an issue as an issue file (what `issue import` reads).

    Example: mailer issue export 3 bulletin-2027-05.md
    """
    current = state(ctx)
    with current.session() as session:
        text = issuefile.dump(
            issues.document(session, issues.get(session, issue_id)),
            current.config.settings.calendar.zone,
        )
    if write_out(text, file, str(file)):
        err.print(f"Wrote issue {issue_id} to {escape(str(file))}")


ISSUE_FIELDS = (
    "id",
    "publication",
    "number",
    "status",
    "subject",
    "preheader",
    "slot_at",
    "last_edited_by",
    "approved_by",
    "approved_at",
    "send_started_at",
    "send_finished_at",
)


def issue_json(issue: Issue) -> dict[str, object]:
    """An issue's own fields as every JSON document shows them."""
    return pick(issue, *ISSUE_FIELDS)


@app.command("list")
def list_command(
    ctx: typer.Context,
    publication: Annotated[Publication | None, typer.Option(help="Only this publication.")] = None,
    status: Annotated[IssueStatus | None, typer.Option(help="Only this status.")] = None,
    as_json: AsJson = False,
) -> None:
    """List issues, newest slot first.

    Example: mailer issue list --publication bulletin --status draft
    """
    current = state(ctx)
    zone = current.config.settings.calendar.zone
    with current.session() as session:
        found = issues.listing(session, publication, status)
    if as_json:
        print_document({"issues": [issue_json(issue) for issue in found]})
        return
    table(
        [
            *(Column(c, no_wrap=True) for c in ("id", "publication", "number", "slot", "status")),
            "subject",
        ],
        (
            (
                str(issue.id),
                issue.publication.value,
                issue.number,
                issues.slot_label(issue.slot_at, zone),
                issue.status.value,
                issue.subject,
            )
            for issue in found
        ),
    )
    err.print(f"{len(found)} issues")


@app.command("show")
def show_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    as_json: AsJson = False,
) -> None:
    """Show an issue: its details, sections and items, and lint results.

    Example: mailer issue show 3
    """
    current = state(ctx)
    zone = current.config.settings.calendar.zone
    issue = _load(current, issue_id)
    with current.session() as session:
        doc = issues.document(session, issue)
        content = issues.content(session, issue, zone)
    rendered, _ = _rendered(current, issue)
    findings = lint.lint(content, rendered)
    blocking = len(lint.errors(findings))
    if as_json:
        print_document(
            {
                "issue": issue_json(issue),
                "sections": doc.sections,
                "sponsor": doc.sponsor,
                "events": content.events,
                "lint": {
                    "errors": blocking,
                    "warnings": len(findings) - blocking,
                    "findings": findings,
                },
            }
        )
        return
    console.print(f"[bold]{issue.publication} {issue.number}[/] (issue {issue.id}, {issue.status})")
    console.print(f"Subject:   {escape(issue.subject)}")
    console.print(f"Preheader: {escape(issue.preheader) or '-'}")
    console.print(f"Slot:      {issues.slot_label(issue.slot_at, zone)}")
    if issue.approved_at:
        by = escape(issue.approved_by or "-")
        console.print(f"Approved:  {issue.approved_at:%Y-%m-%d %H:%M} UTC by {by}")
    for section in doc.sections:
        console.print(f"\n[bold]## {escape(section.heading)}[/]")
        for item in section.items:
            extras = " [link]" if item.link else ""
            extras += " [image]" if item.image else ""
            console.print(f"  ### {escape(item.title)}{escape(extras)}")
    if doc.sponsor:
        console.print(f"\nSponsor: {escape(doc.sponsor.name)}")
    console.print(f"\nEvents in the diary for this issue: {len(content.events)}")
    console.print(f"Lint: {blocking} errors, {len(findings) - blocking} warnings")


def _print_findings(findings: list[lint.Finding]) -> None:
    if not findings:
        console.print("[green]No problems found.[/]")
    for finding in findings:
        colour = "red" if finding.severity is lint.Severity.ERROR else "yellow"
        console.print(
            f"[{colour}]{finding.severity}[/] {escape(finding.message)} "
            f"{escape(f'[{finding.code}]')}"
        )


@app.command("lint")
def lint_command(
    ctx: typer.Context, issue_id: Annotated[int, typer.Argument(help="Issue id.")]
) -> None:
    """Check an issue: size, images, links, subject and preheader, unsubscribe links.

    Errors block approval (exit status 1); warnings are listed.

    Example: mailer issue lint 3
    """
    current = state(ctx)
    issue = _load(current, issue_id)
    rendered, _ = _rendered(current, issue)
    findings = _findings(current, issue, rendered)
    _print_findings(findings)
    if lint.errors(findings):
        raise typer.Exit(1)


@app.command("approve")
def approve_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    approver: Annotated[str | None, typer.Option("--by", help=BY_HELP)] = None,
    slot_id: Annotated[
        int | None,
        typer.Option(
            "--slot", help="Approve it for this open slot (an id from `mailer calendar`)."
        ),
    ] = None,
) -> None:
    """Approve a draft: lint it, check its slot, freeze content and rendering, schedule it.

    Four eyes: the last editor of an issue may not approve it (approver_may_be_editor =
    false in the staff section of config.toml), and a staff account named by --by must have the
    approver or admin role. Lint errors (the new issue's placeholders among them) block
    approval. An issue with a planned slot is scheduled for it; the daemon sends it then.

    Example: mailer issue approve 3 --by approver@lepnetwork.example
    """
    current = state(ctx)
    config = current.config
    with current.session() as session:
        issue = issues.get(session, issue_id)
        who = _who(current, approver, "Approving")
        try:
            approval = editorial.approve(
                session,
                issue_id,
                approver=who,
                renderer=_renderer(current),
                definition=publications.load(config.lists_dir, issue.publication),
                settings=config.settings,
                slot_id=slot_id,
            )
        except editorial.ApprovalRefused as exc:
            session.rollback()
            if exc.findings:
                _print_findings(exc.findings)
            fail(str(exc), 1 if exc.findings else 2)
        _print_findings(approval.findings)
    issue = approval.issue
    console.print(
        f"Approved issue {issue.id} ({issue.publication} {issue.number}) by {escape(who)}: "
        f"frozen; {escape(approval.note)}."
    )


@app.command("reopen")
def reopen_command(
    ctx: typer.Context, issue_id: Annotated[int, typer.Argument(help="Issue id.")]
) -> None:
    """Make an approved issue a draft again (to correct it); its rendering is dropped.

    Example: mailer issue reopen 3
    """
    current = state(ctx)
    with current.session() as session:
        issue = issues.reopen(session, issues.get(session, issue_id))
        current.audit(session, "issue:reopen", f"issue {issue_id}")
    console.print(f"Issue {issue.id} is a draft again.")


@app.command("cancel")
def cancel_command(
    ctx: typer.Context, issue_id: Annotated[int, typer.Argument(help="Issue id.")]
) -> None:
    """Cancel an issue that has not started sending.

    Example: mailer issue cancel 3
    """
    current = state(ctx)
    with current.session() as session:
        issue = issues.cancel(session, issues.get(session, issue_id))
        current.audit(session, "issue:cancel", f"issue {issue_id}")
    console.print(f"Issue {issue.id} is cancelled.")


@app.command("preview")
def preview_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    out: Annotated[Path | None, typer.Option(help="Folder (default: var/preview/ID).")] = None,
    png: Annotated[
        bool, typer.Option("--png", help="Also screenshots at 600 and 375 px (Chromium).")
    ] = False,
) -> None:
    """Write the HTML, the text and a sample .eml for a fictitious reader.

    Example: mailer issue preview 3 --png
    """
    current = state(ctx)
    config = current.config
    issue = _load(current, issue_id)
    rendered, definition = _rendered(current, issue)
    template = proofs.message_template(
        issue, rendered, definition, config.settings.network, config.settings.web.base_url
    )
    folder = out or config.var_dir / "preview" / str(issue_id)
    personal = proofs.sample_personal(_signer(current), issue, config.settings.network.domain)
    files = proofs.write_preview(
        folder, rendered, template, personal, dkim=messages.dkim_key(config)
    )
    shots = proofs.screenshots(files.html, folder) if png else ()
    for path in (files.html, files.text, files.eml, *shots):
        console.print(escape(str(path)))


@app.command("test")
def test_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    to: Annotated[list[str], typer.Option("--to", help="Address to send the test to.")],
) -> None:
    """Send a test of an issue, subject marked [TEST], through the configured transport.

    A test of the internal bulletin goes only to staff accounts and contacts of LEPs.

    Example: mailer issue test 3 --to me@lepnetwork.example --to colleague@lepnetwork.example
    """
    try:
        addresses = [normalise_email(address) for address in to]
    except ContactFieldError as exc:
        fail(f"--to: {exc}")
    current = state(ctx)
    config = current.config
    issue = _load(current, issue_id)
    with current.session() as session:
        recipients = proofs.proof_recipients(session, issue, addresses)
    rendered, definition = _rendered(current, issue)
    template = proofs.message_template(
        issue,
        rendered,
        definition,
        config.settings.network,
        config.settings.web.base_url,
        subject=messages.proof_subject(issue.subject),
    )
    transport = from_config(config, current.engine)
    replies = asyncio.run(
        proofs.send_tests(
            template,
            recipients,
            issue=issue,
            signer=_signer(current),
            transport=transport,
            domain=config.settings.network.domain,
            dkim=messages.dkim_key(config),
        )
    )
    failed = 0
    for address, reply in replies:
        mark = "[green]sent[/]" if reply.ok else "[red]refused[/]"
        failed += not reply.ok
        console.print(f"{mark} {escape(address)}: {reply.code} {escape(reply.message)}")
    if failed:
        raise typer.Exit(1)
