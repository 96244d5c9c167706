"""Issues in the console: list, compose, preview, test, approve, send, and the send report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from mailer import (
    calendar,
    clock,
    editorial,
    issuefile,
    issues,
    lint,
    messages,
    outbox,
    proofs,
    publications,
    staff,
)
from mailer.models import (
    DeliveryStatus,
    Issue,
    IssueStatus,
    Publication,
    StaffAccount,
)
from mailer.transports import TransportError
from mailer.web.pages import (
    RowId,
    context,
    email_page,
    flash,
    page,
    redirect,
)
from mailer.web.staff.common import APPROVER, DB, Staff, audit_action, local_zone

router = APIRouter()


@router.get("/issues", response_class=HTMLResponse)
def issue_list(request: Request, account: Staff, session: DB) -> Response:
    return page(
        request,
        "staff/issues.html",
        {"issues": issues.listing(session), "zone": local_zone(request)},
        staff=account,
    )


@router.post("/issues/new")
def issue_new(
    request: Request,
    account: Staff,
    session: DB,
    publication: Annotated[str, Form()] = "bulletin",
) -> Response:
    settings = context(request).config.settings
    try:
        chosen = Publication(publication)
    except ValueError:
        flash(request, "Choose the bulletin or the newsletter.")
        return redirect("/staff/issues")
    document = editorial.new_draft(session, chosen, slot_at=None, settings=settings)
    issue = editorial.save(session, document, editor=account.email, settings=settings)
    session.commit()
    flash(request, f"Created {chosen} {issue.number}: replace the placeholders below.")
    return redirect(f"/staff/issues/{issue.id}")


def _issue_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    issue: Issue,
    *,
    text: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    ctx = context(request)
    definition = publications.load(ctx.config.lists_dir, issue.publication)
    findings: list[lint.Finding] = []
    render_error = None
    zone = local_zone(request)
    try:
        rendered = issues.rendering(session, issue, ctx.renderer, definition)
        findings = lint.lint(issues.content(session, issue, zone), rendered)
    except Exception as exc:  # a broken template must not hide the editor
        render_error = str(exc)
    slots = editorial.open_slots(session, issue.publication, issue_id=issue.id)
    own_slot = next((s for s in slots if s.number == issue.number), None)
    return page(
        request,
        "staff/issue.html",
        {
            "issue": issue,
            "text": text
            if text is not None
            else issuefile.dump(issues.document(session, issue), zone),
            "error": error,
            "render_error": render_error,
            "findings": findings,
            "blocking": lint.errors(findings),
            "slots": slots,
            "own_slot": own_slot,
            "can_approve": staff.can_approve(account.role),
            "seeds": proofs.seeds(session, issue, ctx.config.settings.proofs),
            "zone": zone,
            "frozen": issue.status in issues.FROZEN,
        },
        status=status,
        staff=account,
    )


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def issue_edit(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    return _issue_page(request, session, account, issues.get(session, issue_id))


@router.post("/issues/{issue_id}", response_class=HTMLResponse)
def issue_save(
    request: Request,
    account: Staff,
    issue_id: RowId,
    session: DB,
    text: Annotated[str, Form()] = "",
) -> Response:
    issue = issues.get(session, issue_id)
    settings = context(request).config.settings
    try:
        document = issuefile.parse(text, settings.calendar.zone, "the issue")
        editorial.save(
            session, document, issue_id=issue_id, editor=account.email, settings=settings
        )
        session.commit()
    except (issuefile.IssueFileError, issues.IssueError) as exc:
        session.rollback()
        return _issue_page(request, session, account, issue, text=text, error=str(exc), status=422)
    flash(request, "Saved.")
    return redirect(f"/staff/issues/{issue_id}")


@router.get("/issues/{issue_id}/preview.html", response_class=HTMLResponse)
def issue_preview(request: Request, issue_id: RowId, session: DB) -> Response:
    ctx = context(request)
    issue = issues.get(session, issue_id)
    definition = publications.load(ctx.config.lists_dir, issue.publication)
    rendered = issues.rendering(session, issue, ctx.renderer, definition)
    sample = proofs.sample_personal(ctx.signer, issue, ctx.config.settings.network.domain)
    html, _ = rendered.for_reader(sample.name, sample.token)
    return email_page(html, framed=True)


@router.post("/issues/{issue_id}/test")
async def issue_test(
    request: Request,
    account: Staff,
    issue_id: RowId,
    session: DB,
    to: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    """A test to the seeds ticked (yourself when none is): each greeted by their own name;
    the bulletin's test only to staff and LEP contacts (the firewall)."""
    ctx = context(request)
    config = ctx.config
    issue = issues.get(session, issue_id)
    definition = publications.load(config.lists_dir, issue.publication)
    rendered = issues.rendering(session, issue, ctx.renderer, definition)
    template = proofs.message_template(
        issue,
        rendered,
        definition,
        config.settings.network,
        config.settings.web.base_url,
        subject=messages.proof_subject(issue.subject),
    )
    try:
        replies = await proofs.send_tests(
            template,
            proofs.seed_recipients(session, issue, to or [account.email], config.settings.proofs),
            issue=issue,
            signer=ctx.signer,
            transport=ctx.new_transport(),
            domain=config.settings.network.domain,
            dkim=messages.dkim_key(config),
        )
        sent = "; ".join(f"{address}: {reply.code} {reply.message}" for address, reply in replies)
        flash(request, f"Test sent to {sent}")
    except (TransportError, proofs.ProofError) as exc:
        flash(request, f"The test could not be sent: {exc}")
    return redirect(f"/staff/issues/{issue_id}")


@router.post("/issues/{issue_id}/approve", dependencies=[APPROVER])
def issue_approve(
    request: Request,
    account: Staff,
    issue_id: RowId,
    session: DB,
    slot_id: Annotated[str, Form()] = "",
) -> Response:
    ctx = context(request)
    issue = issues.get(session, issue_id)
    chosen: int | None = None
    if slot_id.strip():
        try:
            chosen = int(slot_id)
        except ValueError:
            flash(
                request, f"Not approved: {slot_id[:40]!r} is not a slot; choose one from the list."
            )
            return redirect(f"/staff/issues/{issue_id}")
    try:
        approval = editorial.approve(
            session,
            issue_id,
            approver=account.email,
            renderer=ctx.renderer,
            definition=publications.load(ctx.config.lists_dir, issue.publication),
            settings=ctx.config.settings,
            slot_id=chosen,
        )
        session.commit()
    except (issues.IssueError, calendar.CalendarError) as exc:
        session.rollback()
        flash(request, f"Not approved: {exc}")
        return redirect(f"/staff/issues/{issue_id}")
    flash(request, f"Approved, {approval.note}: content and rendering are frozen.")
    return redirect(f"/staff/issues/{issue_id}")


@router.get("/issues/{issue_id}/cancel", response_class=HTMLResponse, dependencies=[APPROVER])
def issue_cancel_confirm(
    request: Request, account: Staff, issue_id: RowId, session: DB
) -> Response:
    """What cancelling will do, asked before it is done. Changes nothing."""
    issue = issues.get(session, issue_id)
    if IssueStatus.CANCELLED not in issues.TRANSITIONS[issue.status]:
        flash(request, f"Issue {issue_id} is {issue.status}: it cannot be cancelled.")
        return redirect(f"/staff/issues/{issue_id}")
    name = f"{issue.publication.value} {issue.number}"
    when = issues.slot_label(issue.slot_at, local_zone(request))
    slot = f" at its slot on {when}" if issue.slot_at else ""
    return page(
        request,
        "staff/confirm.html",
        {
            "title": f"Cancel {name}",
            "question": f"Cancel {name}: it will not be sent{slot}?",
            "points": [
                "This cannot be undone: a cancelled issue is never sent, and cannot be reopened.",
                "To change it and send it later instead, go back and reopen it.",
            ],
            "action": f"/staff/issues/{issue_id}/cancel",
            "button": f"Cancel {name}",
            "danger": True,
            "back": f"/staff/issues/{issue_id}",
            "back_label": "Keep it",
        },
        staff=account,
    )


@router.post("/issues/{issue_id}/cancel", dependencies=[APPROVER])
def issue_cancel(
    request: Request,
    account: Staff,
    issue_id: RowId,
    session: DB,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Cancel the issue, once its confirmation page said what that does."""
    if confirm != "yes":
        return redirect(f"/staff/issues/{issue_id}/cancel")
    try:
        issues.cancel(session, issues.get(session, issue_id))
        audit_action(session, account, "issue:cancel", f"issue {issue_id}")
        session.commit()
        flash(request, "Cancelled: it will not be sent.")
    except issues.IssueStateError as exc:
        flash(request, str(exc))
    return redirect(f"/staff/issues/{issue_id}")


@router.post("/issues/{issue_id}/reopen", dependencies=[APPROVER])
def issue_reopen(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    try:
        issues.reopen(session, issues.get(session, issue_id))
        audit_action(session, account, "issue:reopen", f"issue {issue_id}")
        session.commit()
        flash(request, "A draft again: edit, then approve.")
    except issues.IssueStateError as exc:
        flash(request, str(exc))
    return redirect(f"/staff/issues/{issue_id}")


@router.get("/issues/{issue_id}/send", response_class=HTMLResponse, dependencies=[APPROVER])
def issue_send_confirm(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    """What sending now will do (to how many, and when its slot was), asked before it is
    done; the recipients are counted as the send would choose them. Changes nothing."""
    ctx = context(request)
    issue = issues.get(session, issue_id)
    rule = publications.load(ctx.config.lists_dir, issue.publication).audience
    try:
        recipients = outbox.would_queue(session, issue, rule)
    except issues.IssueStateError as exc:
        flash(request, str(exc))
        return redirect(f"/staff/issues/{issue_id}")
    name = f"{issue.publication.value} {issue.number}"
    timing = issues.slot_timing(issue.slot_at, clock.now(), local_zone(request))
    points = [
        "Sending starts at once and cannot be undone.",
        "Each recipient is checked again just before their copy goes (unsubscribed, "
        "suppressed or disabled since: skipped).",
    ]
    if recipients == 0:
        points.insert(0, "Nobody would receive it: no contact is subscribed and active.")
    return page(
        request,
        "staff/confirm.html",
        {
            "title": f"Send {name} now",
            "question": f"Send {name} now to {recipients:,} "
            f"recipient{'' if recipients == 1 else 's'}, {timing}?",
            "points": points,
            "action": f"/staff/issues/{issue_id}/send",
            "button": f"Send to {recipients:,} now",
            "danger": False,
            "back": f"/staff/issues/{issue_id}",
            "back_label": "Not now",
        },
        staff=account,
    )


@router.post("/issues/{issue_id}/send", dependencies=[APPROVER])
def issue_send(
    request: Request,
    account: Staff,
    issue_id: RowId,
    session: DB,
    background: BackgroundTasks,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Send the issue now, once its confirmation page said to how many and when."""
    if confirm != "yes":
        return redirect(f"/staff/issues/{issue_id}/send")
    ctx = context(request)
    issue = issues.get(session, issue_id)
    try:
        rule = publications.load(ctx.config.lists_dir, issue.publication).audience
        queued = outbox.enqueue(session, issue, rule)
        audit_action(session, account, "issue:send", f"issue {issue_id}", f"{queued} recipients")
        session.commit()
    except issues.IssueStateError as exc:
        flash(request, str(exc))
        return redirect(f"/staff/issues/{issue_id}")
    background.add_task(ctx.drain_outbox)
    flash(request, f"Sending to {queued:,} recipients.")
    return redirect(f"/staff/sends/{issue_id}")


@router.get("/sends/{issue_id}", response_class=HTMLResponse)
def send_report(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    issue = issues.get(session, issue_id)
    report = outbox.report(session, issue_id)
    done = sum(n for s, n in report.counts.items() if s not in outbox.OPEN)
    return page(
        request,
        "staff/send.html",
        {
            "issue": issue,
            "report": report,
            "statuses": list(DeliveryStatus),
            "done": done,
            "in_doubt": outbox.IN_DOUBT,
            "live": issue.status is IssueStatus.SENDING,
        },
        staff=account,
    )
