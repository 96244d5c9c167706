"""Issues in the console: list, compose (the structured editor, or the issue file itself),
preview, test, approve, send, and the send report."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlmodel import Session

from mailer import (
    calendar,
    clock,
    editorial,
    issuefile,
    issues,
    lint,
    media,
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
    MediaImage,
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
from mailer.web.staff import issue_form
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


def _library(session: Session) -> dict[str, MediaImage]:
    return {row.name: row for row in media.listing(session)}


def _checks(
    request: Request, session: Session, issue: Issue
) -> tuple[list[lint.Finding], str | None]:
    ctx = context(request)
    definition = publications.load(ctx.config.lists_dir, issue.publication)
    try:
        rendered = issues.rendering(session, issue, ctx.renderer, definition)
        return lint.lint(issues.content(session, issue, local_zone(request)), rendered), None
    except Exception as exc:  # a broken template must not hide the editor
        return [], str(exc)


def _actions(
    request: Request, account: StaffAccount, session: Session, issue: Issue
) -> dict[str, Any]:
    """What the Actions section (test, approve, send, reopen, cancel) needs."""
    slots = editorial.open_slots(session, issue.publication, issue_id=issue.id)
    return {
        "slots": slots,
        "own_slot": next((s for s in slots if s.number == issue.number), None),
        "can_approve": staff.can_approve(account.role),
        "seeds": proofs.seeds(session, issue, context(request).config.settings.proofs),
        "frozen": issue.status in issues.FROZEN,
    }


def _issue_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    issue: Issue,
    fields: issue_form.IssueFields,
    *,
    errors: dict[str, str] | None = None,
    anchor: str = "",
    restored: datetime | None = None,
    draft: bool = False,
    status: int = 200,
) -> Response:
    """The structured editor: the form, the preview beside it, the checks and actions."""
    findings, render_error = _checks(request, session, issue)
    zone = local_zone(request)
    actions = _actions(request, account, session, issue)
    library = _library(session)
    root = context(request).config.settings.web.root
    choices = [(slot.send_at.astimezone(zone).isoformat(), slot) for slot in actions["slots"]]
    return page(
        request,
        "staff/issue.html",
        {
            "issue": issue,
            "fields": fields,
            "errors": errors or {},
            "anchor": anchor,
            "restored": restored,
            "draft": draft,
            "slot_choices": choices,
            "slot_known": any(value == fields.slot for value, _ in choices),
            "library": library,
            "picked": lambda url: issue_form.picked(url, library, root),
            "http_site": not root.startswith("https://"),
            "render_error": render_error,
            "findings": findings,
            "blocking": lint.errors(findings),
            "zone": zone,
            **actions,
        },
        status=status,
        staff=account,
    )


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def issue_edit(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    issue = issues.get(session, issue_id)
    zone = local_zone(request)
    document = issues.document(session, issue)
    fields = issue_form.from_document(document, zone)
    fields.version = issue_form.version_of(document)
    kept = issue_form.autosaved(session, issue, account.email)
    if kept is not None and kept[0] != fields and issue.status is IssueStatus.DRAFT:
        return _issue_page(request, session, account, issue, kept[0], restored=kept[1], draft=True)
    return _issue_page(request, session, account, issue, fields)


async def _submitted(
    request: Request, session: Session, issue: Issue
) -> tuple[issue_form.IssueFields, str]:
    """The form's fields (library images chosen applied) and its ``op`` button."""
    form = await request.form()
    if "subject" not in form:  # not the editor's form: nothing of it may replace a draft
        raise HTTPException(400, "not the issue editor's form")
    fields = issue_form.from_form(form, issue.publication)
    root = context(request).config.settings.web.root
    issue_form.resolve_picks(fields, _library(session), root)
    op = form.get("op")
    return fields, op if isinstance(op, str) else "save"


def _save(
    request: Request,
    session: Session,
    account: StaffAccount,
    issue: Issue,
    fields: issue_form.IssueFields,
) -> dict[str, str]:
    """Save the fields as the issue's content, through the same door as an issue file
    (:func:`mailer.editorial.save`); each field's error when they cannot be (nothing saved)."""
    assert issue.id is not None
    settings = context(request).config.settings
    document, errors = issue_form.build(fields, settings.calendar.zone)
    if document is None:
        return errors
    try:
        editorial.save(
            session, document, issue_id=issue.id, editor=account.email, settings=settings
        )
    except editorial.SlotError as exc:
        session.rollback()
        return {"slot": f"Slot: {exc}"}
    except issues.IssueError as exc:
        session.rollback()
        return {"form": str(exc)}
    issue_form.drop(session, issue.id, account.email)
    return {}


@router.post("/issues/{issue_id}", response_class=HTMLResponse)
async def issue_save(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    """The editor's form: save, or a block operation (add, move, remove) that shows the
    form again with the change and keeps what was typed as the autosave, saving nothing."""
    issue = issues.get(session, issue_id)
    fields, op = await _submitted(request, session, issue)
    if op == "discard":
        issue_form.drop(session, issue_id, account.email)
        session.commit()
        flash(request, "Your autosaved changes were discarded: this is the issue as saved.")
        return redirect(f"/staff/issues/{issue_id}")
    if op != "save":
        anchor = issue_form.apply(fields, op)
        if issue.status is IssueStatus.DRAFT:
            issue_form.keep(session, issue_id, account.email, fields)
            session.commit()
        return _issue_page(request, session, account, issue, fields, anchor=anchor, draft=True)
    clash = issue_form.conflict(fields, issue, issues.document(session, issue))
    errors = {"form": clash} if clash else _save(request, session, account, issue, fields)
    if errors:
        issue = issues.get(session, issue_id)
        if issue.status is IssueStatus.DRAFT:
            issue_form.keep(session, issue_id, account.email, fields)
        session.commit()
        return _issue_page(
            request, session, account, issue, fields, errors=errors, draft=True, status=422
        )
    session.commit()
    flash(request, "Saved.")
    return redirect(f"/staff/issues/{issue_id}")


@router.post("/issues/{issue_id}/autosave")
async def issue_autosave(
    request: Request, account: Staff, issue_id: RowId, session: DB
) -> Response:
    """The editor's script: keep what is typed (the issue itself is not saved), say which
    fields are wrong and which the library filled in; the preview then shows the draft."""
    issue = issues.get(session, issue_id)
    if issue.status is not IssueStatus.DRAFT:
        return JSONResponse({"error": f"issue {issue_id} is {issue.status}: not editable"}, 409)
    fields, _ = await _submitted(request, session, issue)
    saved_at = issue_form.keep(session, issue_id, account.email, fields)
    session.commit()
    _, errors = issue_form.build(fields, local_zone(request))
    filled = {}
    for s, section in enumerate(fields.sections):
        for j, item in enumerate(section.items):
            for key in ("image", "image_alt", "image_size"):
                filled[f"s{s}.i{j}.{key}"] = getattr(item, key)
    if not issue.publication.internal:
        filled["sponsor.logo"] = fields.sponsor.logo
        filled["sponsor.logo_alt"] = fields.sponsor.logo_alt
    return JSONResponse(
        {
            "saved_at": saved_at.astimezone(local_zone(request)).strftime("%H:%M:%S"),
            "valid": not errors,
            "errors": errors,
            "filled": filled,
        }
    )


@router.get("/issues/{issue_id}/raw", response_class=HTMLResponse)
def issue_raw(request: Request, account: Staff, issue_id: RowId, session: DB) -> Response:
    """Advanced: the issue file itself, as `mailer issue export` writes it."""
    issue = issues.get(session, issue_id)
    text = issuefile.dump(issues.document(session, issue), local_zone(request))
    return _raw_page(request, session, account, issue, text)


def _raw_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    issue: Issue,
    text: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "staff/issue_raw.html",
        {
            "issue": issue,
            "text": text,
            "error": error,
            "frozen": issue.status in issues.FROZEN,
            "can_approve": staff.can_approve(account.role),
        },
        status=status,
        staff=account,
    )


@router.post("/issues/{issue_id}/raw", response_class=HTMLResponse)
def issue_raw_save(
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
        issue_form.drop(session, issue_id, account.email)
        session.commit()
    except (issuefile.IssueFileError, issues.IssueError) as exc:
        session.rollback()
        return _raw_page(request, session, account, issue, text, error=str(exc), status=422)
    flash(request, "Saved.")
    return redirect(f"/staff/issues/{issue_id}")


@router.get("/issues/{issue_id}/preview.html", response_class=HTMLResponse)
def issue_preview(
    request: Request, account: Staff, issue_id: RowId, session: DB, draft: str = ""
) -> Response:
    """The issue as a reader sees it; ``draft``: as autosaved, when that is a valid issue."""
    ctx = context(request)
    issue = issues.get(session, issue_id)
    definition = publications.load(ctx.config.lists_dir, issue.publication)
    rendered = None
    kept = issue_form.autosaved(session, issue, account.email) if draft else None
    if kept is not None and issue.status is IssueStatus.DRAFT:
        zone = local_zone(request)
        document, _ = issue_form.build(kept[0], zone)
        if document is not None:
            slot = next(
                (
                    s
                    for s in editorial.open_slots(session, issue.publication, issue_id=issue.id)
                    if s.send_at == document.slot_at
                ),
                None,
            )
            number = slot.number if slot is not None else issue.number
            content = dataclasses.replace(document, number=number).content(
                issues.diary(session, issue.publication, document.slot_at, zone)
            )
            rendered = ctx.renderer.render(content, definition)
    if rendered is None:
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
