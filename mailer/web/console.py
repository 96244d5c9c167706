"""The staff console: login, dashboard, compose and approve issues, contacts, sends, mailbox."""

from __future__ import annotations

import io
import json
import re
import tempfile
from datetime import date, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException

from mailer import (
    audit,
    bounces,
    calendar,
    clock,
    contacts,
    editorial,
    events,
    issuefile,
    issues,
    lint,
    messages,
    organisations,
    outbox,
    privacy,
    proofs,
    publications,
    sessions,
    staff,
)
from mailer.contacts import ContactFieldError
from mailer.db import get_by_id
from mailer.importer import ImportFileError, import_contacts
from mailer.models import (
    CapturedMessage,
    Contact,
    ContactStatus,
    DeliveryStatus,
    EventAudience,
    Issue,
    IssueStatus,
    Organisation,
    Publication,
    Role,
    StaffAccount,
    StaffRole,
    StaffSession,
)
from mailer.transports import TransportError
from mailer.web.app import (
    LoginRequired,
    RowId,
    check_csrf,
    client_hash,
    context,
    current_session,
    db,
    email_page,
    flash,
    log_in,
    log_out,
    page,
    redirect,
    require_role,
    staff_of,
)

router = APIRouter(prefix="/staff")
uploads = APIRouter(prefix="/staff")  # its own body limit: [web] upload_limit_mb
DB = Annotated[Session, Depends(db)]
CSRF = Annotated[str, Form()]
APPROVERS = (StaffRole.APPROVER, StaffRole.ADMIN)


def _audit(
    session: Session, account: StaffAccount, action: str, target: str = "", detail: str = ""
) -> None:
    """Record a staff action, committed with the change it describes."""
    audit.record(session, account.email, action, target, detail)


def _local(request: Request) -> ZoneInfo:
    return context(request).config.settings.calendar.zone


# -- login ---------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/staff") -> Response:
    return page(request, "staff/login.html", {"next": next, "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: DB,
    csrf: CSRF = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/staff",
) -> Response:
    check_csrf(request, csrf)
    try:
        account = staff.authenticate(
            session,
            email,
            password,
            context(request).config.settings.staff,
            client=client_hash(request),
        )
    except staff.LoginRefused as exc:
        return page(request, "staff/login.html", {"next": next, "error": str(exc)}, status=401)
    log_in(request, session, account)
    _audit(session, account, "staff:login")
    session.commit()
    return redirect(next if next.startswith("/staff") and "//" not in next else "/staff")


@router.post("/logout")
def logout(request: Request, session: DB, csrf: CSRF = "") -> Response:
    try:
        staff_of(request, session)
    except LoginRequired:
        return redirect("/staff/login")  # already ended: nothing to do
    check_csrf(request, csrf)
    row = current_session(request)
    sessions.end(session, row, sessions.Why.LOGOUT)
    session.commit()
    log_out(request)
    return redirect("/staff/login")


# -- your account and everyone's sessions ------------------------------------------


def _account_page(
    request: Request, session: Session, account: StaffAccount, error: str | None = None
) -> Response:
    web = context(request).config.settings.web
    everyone = sessions.live(session, web)
    mine = [row for row, _ in everyone if row.staff_id == account.id]
    return page(
        request,
        "staff/account.html",
        {
            "mine": mine,
            "everyone": everyone if account.role is StaffRole.ADMIN else [],
            "current": current_session(request).id,
            "error": error,
            "minimum": staff.MIN_PASSWORD,
            "zone": _local(request),
        },
        status=422 if error else 200,
        staff=account,
    )


@router.get("/account", response_class=HTMLResponse)
def account_view(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    return _account_page(request, session, account)


@router.post("/account/password", response_class=HTMLResponse)
def account_password(
    request: Request,
    session: DB,
    csrf: CSRF = "",
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    repeat: Annotated[str, Form()] = "",
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    if new != repeat:
        return _account_page(request, session, account, "the two new passwords differ")
    try:
        staff.change_password(
            session,
            account.email,
            current,
            new,
            context(request).config.settings.staff,
            client=client_hash(request),
            keep=current_session(request).id,
        )
    except (staff.StaffError, staff.LoginRefused) as exc:
        session.rollback()
        return _account_page(request, session, account, str(exc))
    _audit(session, account, "staff:password", account.email, "changed in the console")
    session.commit()
    flash(request, "Password changed: your other sessions have ended.")
    return redirect("/staff/account")


@router.post("/account/end-others")
def account_end_others(request: Request, session: DB, csrf: CSRF = "") -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    assert account.id is not None
    ended = sessions.end_for(
        session, account.id, sessions.Why.LOGOUT, keep=current_session(request).id
    )
    session.commit()
    flash(request, f"Ended {ended} other session(s) of yours.")
    return redirect("/staff/account")


@router.post("/sessions/end-all")
def sessions_end_all(request: Request, session: DB, csrf: CSRF = "") -> Response:
    """An admin logs everyone out, themselves included (a suspected leak)."""
    account = staff_of(request, session)
    check_csrf(request, csrf)
    require_role(account, StaffRole.ADMIN)
    ended = sessions.end_all(session)
    _audit(session, account, "staff:end-all-sessions", detail=f"{ended} sessions")
    session.commit()
    log_out(request)
    return redirect("/staff/login")


@router.post("/sessions/{session_id}/end")
def session_end(request: Request, session_id: RowId, session: DB, csrf: CSRF = "") -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    row = get_by_id(session, StaffSession, session_id)
    if row is None or (row.staff_id != account.id and account.role is not StaffRole.ADMIN):
        raise issues.IssueError(f"there is no session {session_id}")
    sessions.end(
        session,
        row,
        sessions.Why.ENDED_BY_ADMIN if row.staff_id != account.id else sessions.Why.LOGOUT,
    )
    _audit(session, account, "staff:end-session", f"session {session_id}")
    session.commit()
    flash(request, "Session ended.")
    return redirect("/staff/account")


# -- dashboard -----------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    settings = context(request).config.settings
    zone = _local(request)
    now = clock.now()
    year = now.astimezone(zone).year
    views = calendar.year_view(session, year, settings)
    upcoming = [v for v in views if v.send_at > now and v.status != "skipped"][:8]
    if len(upcoming) < 8:
        upcoming += [
            v for v in calendar.year_view(session, year + 1, settings) if v.status != "skipped"
        ][: 8 - len(upcoming)]
    session.commit()
    in_progress = [
        i
        for i in issues.listing(session)
        if i.status
        in (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SCHEDULED, IssueStatus.SENDING)
    ]
    sent = [
        i for i in issues.listing(session) if i.status in (IssueStatus.SENT, IssueStatus.SENDING)
    ][:5]
    reports = [(i, outbox.report(session, i.id or 0)) for i in sent]
    return page(
        request,
        "staff/dashboard.html",
        {
            "year": year,
            "counts": calendar.year_counts(views, settings),
            "upcoming": upcoming,
            "in_progress": in_progress,
            "reports": reports,
            "zone": zone,
        },
        staff=account,
    )


# -- issues ----------------------------------------------------------------------------


@router.get("/issues", response_class=HTMLResponse)
def issue_list(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    return page(
        request,
        "staff/issues.html",
        {"issues": issues.listing(session), "zone": _local(request)},
        staff=account,
    )


@router.post("/issues/new")
def issue_new(
    request: Request, session: DB, csrf: CSRF = "", publication: Annotated[str, Form()] = "bulletin"
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
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
    zone = _local(request)
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
            "zone": zone,
            "frozen": issue.status in issues.FROZEN,
        },
        status=status,
        staff=account,
    )


@router.get("/issues/{issue_id}", response_class=HTMLResponse)
def issue_edit(request: Request, issue_id: RowId, session: DB) -> Response:
    account = staff_of(request, session)
    return _issue_page(request, session, account, issues.get(session, issue_id))


@router.post("/issues/{issue_id}", response_class=HTMLResponse)
def issue_save(
    request: Request,
    issue_id: RowId,
    session: DB,
    csrf: CSRF = "",
    text: Annotated[str, Form()] = "",
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
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
    staff_of(request, session)
    ctx = context(request)
    issue = issues.get(session, issue_id)
    definition = publications.load(ctx.config.lists_dir, issue.publication)
    rendered = issues.rendering(session, issue, ctx.renderer, definition)
    sample = proofs.sample_personal(ctx.signer, issue, ctx.config.settings.network.domain)
    html, _ = rendered.for_reader(sample.name, sample.token)
    return email_page(html, framed=True)


@router.post("/issues/{issue_id}/test")
async def issue_test(request: Request, issue_id: RowId, session: DB, csrf: CSRF = "") -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
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
            proofs.proof_recipients(session, issue, [account.email]),
            issue=issue,
            signer=ctx.signer,
            transport=ctx.new_transport(),
            domain=config.settings.network.domain,
            dkim=messages.dkim_key(config),
        )
        reply = replies[0][1]
        flash(request, f"Test sent to {account.email}: {reply.code} {reply.message}")
    except (TransportError, proofs.ProofError) as exc:
        flash(request, f"The test could not be sent: {exc}")
    return redirect(f"/staff/issues/{issue_id}")


@router.post("/issues/{issue_id}/approve")
def issue_approve(
    request: Request,
    issue_id: RowId,
    session: DB,
    csrf: CSRF = "",
    slot_id: Annotated[str, Form()] = "",
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    require_role(account, *APPROVERS)
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


@router.post("/issues/{issue_id}/cancel")
def issue_cancel(request: Request, issue_id: RowId, session: DB, csrf: CSRF = "") -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    require_role(account, *APPROVERS)
    try:
        issues.cancel(session, issues.get(session, issue_id))
        _audit(session, account, "issue:cancel", f"issue {issue_id}")
        session.commit()
        flash(request, "Cancelled: it will not be sent.")
    except issues.IssueStateError as exc:
        flash(request, str(exc))
    return redirect(f"/staff/issues/{issue_id}")


@router.post("/issues/{issue_id}/reopen")
def issue_reopen(request: Request, issue_id: RowId, session: DB, csrf: CSRF = "") -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    require_role(account, *APPROVERS)
    try:
        issues.reopen(session, issues.get(session, issue_id))
        _audit(session, account, "issue:reopen", f"issue {issue_id}")
        session.commit()
        flash(request, "A draft again: edit, then approve.")
    except issues.IssueStateError as exc:
        flash(request, str(exc))
    return redirect(f"/staff/issues/{issue_id}")


@router.post("/issues/{issue_id}/send")
def issue_send(
    request: Request, issue_id: RowId, session: DB, background: BackgroundTasks, csrf: CSRF = ""
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    require_role(account, *APPROVERS)
    ctx = context(request)
    issue = issues.get(session, issue_id)
    try:
        rule = publications.load(ctx.config.lists_dir, issue.publication).audience
        queued = outbox.enqueue(session, issue, rule)
        _audit(session, account, "issue:send", f"issue {issue_id}", f"{queued} recipients")
        session.commit()
    except issues.IssueStateError as exc:
        flash(request, str(exc))
        return redirect(f"/staff/issues/{issue_id}")
    background.add_task(ctx.drain_outbox)
    flash(request, f"Sending to {queued:,} recipients.")
    return redirect(f"/staff/sends/{issue_id}")


# -- sends and the mailbox -------------------------------------------------------------


@router.get("/sends/{issue_id}", response_class=HTMLResponse)
def send_report(request: Request, issue_id: RowId, session: DB) -> Response:
    account = staff_of(request, session)
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


@router.get("/mailbox", response_class=HTMLResponse)
def mailbox(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    captured = session.exec(
        select(CapturedMessage).order_by(col(CapturedMessage.id).desc()).limit(200)
    ).all()
    transport = context(request).config.settings.smtp.transport
    return page(
        request, "staff/mailbox.html", {"messages": captured, "transport": transport}, staff=account
    )


def _captured(session: Session, message_id: int) -> EmailMessage:
    captured = get_by_id(session, CapturedMessage, message_id)
    if captured is None:
        raise issues.IssueError(f"there is no captured message {message_id}")
    parsed = BytesParser(policy=policy.default).parsebytes(Path(captured.path).read_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


@router.get("/mailbox/{message_id}", response_class=HTMLResponse)
def mailbox_message(request: Request, message_id: RowId, session: DB) -> Response:
    account = staff_of(request, session)
    message = _captured(session, message_id)
    text = message.get_body(("plain",))
    return page(
        request,
        "staff/message.html",
        {
            "message_id": message_id,
            "headers": list(message.items()),
            "text": text.get_content() if text is not None else "",
            "has_html": message.get_body(("html",)) is not None,
        },
        staff=account,
    )


@router.get("/mailbox/{message_id}/html", response_class=HTMLResponse)
def mailbox_html(request: Request, message_id: RowId, session: DB) -> Response:
    staff_of(request, session)
    part = _captured(session, message_id).get_body(("html",))
    return email_page(part.get_content() if part is not None else "", framed=True)


# -- events ----------------------------------------------------------------------------


@router.get("/events", response_class=HTMLResponse)
def event_list(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    start = clock.now().astimezone(_local(request)).date() - timedelta(days=7)
    return page(
        request,
        "staff/events.html",
        {"events": events.listing(session, start), "audiences": list(EventAudience), "error": None},
        staff=account,
    )


@router.post("/events", response_class=HTMLResponse)
def event_add(
    request: Request,
    session: DB,
    csrf: CSRF = "",
    when: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    location: Annotated[str, Form()] = "",
    link: Annotated[str, Form()] = "",
    audience: Annotated[str, Form()] = "both",
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    try:
        events.add(
            session,
            date.fromisoformat(when),
            title,
            location=location,
            link=link or None,
            audience=EventAudience(audience),
        )
        _audit(session, account, "event:add", detail=f"{when} {title}")
        session.commit()
    except (ValueError, events.EventError) as exc:
        session.rollback()
        start = clock.now().astimezone(_local(request)).date() - timedelta(days=7)
        return page(
            request,
            "staff/events.html",
            {
                "events": events.listing(session, start),
                "audiences": list(EventAudience),
                "error": str(exc),
            },
            status=422,
            staff=account,
        )
    flash(request, f"Added the event {title}.")
    return redirect("/staff/events")


# -- contacts --------------------------------------------------------------------------


@router.get("/contacts", response_class=HTMLResponse)
def contact_list(
    request: Request, session: DB, q: str = "", org: str = "", stated: str = ""
) -> Response:
    account = staff_of(request, session)
    search, organisation, review = q or None, org or None, bool(stated)
    rows = list(
        contacts.iter_contacts(
            session, search=search, organisation=organisation, stated=review, limit=200
        )
    )
    total = contacts.count_contacts(
        session, search=search, organisation=organisation, stated=review
    )
    return page(
        request,
        "staff/contacts.html",
        {"rows": rows, "total": total, "q": q, "org": org, "stated": bool(stated)},
        staff=account,
    )


@router.get("/contacts/export.csv")
def contact_export(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    _audit(session, account, "contacts:export", "contacts.csv", "every contact")
    session.commit()
    buffer = io.StringIO()
    contacts.export_csv(session, buffer)
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


@router.get("/contacts/import", response_class=HTMLResponse)
def contact_import_form(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    return page(request, "staff/import.html", {"report": None, "error": None}, staff=account)


def _upload_name(filename: str) -> str:
    """The uploaded file's own name, made safe to create in a folder of ours."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename.replace("\\", "/")).name)[:100].strip()
    return name if name.strip(".") else "upload.csv"


def _import_error(request: Request, account: StaffAccount, error: str, status: int) -> Response:
    return page(
        request, "staff/import.html", {"report": None, "error": error}, status=status, staff=account
    )


@uploads.post("/contacts/import", response_class=HTMLResponse)
async def contact_import(request: Request, session: DB) -> Response:
    """Import an uploaded CSV. The login is checked before a byte of the upload is read;
    the body's size is capped (``[web] upload_limit_mb``, by the router); the file is
    streamed to a temporary file, never held in memory."""
    account = staff_of(request, session)
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
    except MultiPartException as exc:
        return _import_error(request, account, f"the upload could not be read: {exc}", 400)
    try:
        submitted = form.get("csrf")
        check_csrf(request, submitted if isinstance(submitted, str) else None)
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload) or not upload.filename:
            return _import_error(request, account, "choose a CSV file to import", 422)
        name = _upload_name(upload.filename)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            with path.open("wb") as out:
                while chunk := await upload.read(1024 * 1024):
                    out.write(chunk)
            try:
                report = import_contacts(
                    session,
                    path,
                    zone=_local(request),
                    dry_run=form.get("dry_run") not in (None, ""),
                    source=f"console upload by {account.email}: {name}",
                    batch_size=context(request).config.settings.contacts_import.batch_size,
                )
                if not report.dry_run:
                    _audit(session, account, "contacts:import", name, report.summary())
                    session.commit()
            except ImportFileError as exc:
                # Named as uploaded: the server's temporary folder is nobody's business.
                return _import_error(request, account, str(exc).replace(str(path), name), 422)
    finally:
        await form.close()
    return page(request, "staff/import.html", {"report": report, "error": None}, staff=account)


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_view(request: Request, contact_id: RowId, session: DB) -> Response:
    account = staff_of(request, session)
    return _contact_page(request, session, account, contact_id)


def _contact_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    contact_id: int,
    error: str | None = None,
) -> Response:
    contact = session.get(Contact, contact_id)
    row = contacts.contact_row(session, contact_id)
    if contact is None or row is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    orgs = session.exec(select(Organisation).order_by(col(Organisation.name))).all()
    directory = organisations.Directory(orgs)
    try:
        stated = directory.find(contact.stated_organisation or "")
    except organisations.AmbiguousOrganisation:
        stated = None
    return page(
        request,
        "staff/contact.html",
        {
            "contact": contact,
            "row": row,
            "orgs": orgs,
            "stated": stated,
            "roles": list(Role),
            "error": error,
            "bounces": bounces.listing(session, contact_id=contact_id),
            "history": audit.listing(session, target=f"contact {contact_id}", limit=20),
            "admin": account.role is StaffRole.ADMIN,
            "zone": _local(request),
        },
        status=422 if error else 200,
        staff=account,
    )


@router.post("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_save(
    request: Request,
    contact_id: RowId,
    session: DB,
    csrf: CSRF = "",
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    organisation_id: Annotated[int, Form()] = 0,
) -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    try:
        contacts.edit(
            session,
            contact_id,
            name=name,
            role=Role(role),
            organisation_id=organisation_id,
            actor=account.email,
        )
        session.commit()
    except (ContactFieldError, ValueError) as exc:
        session.rollback()
        return _contact_page(request, session, account, contact_id, str(exc))
    flash(request, "Saved.")
    return redirect(f"/staff/contacts/{contact_id}")


@router.post("/contacts/{contact_id}/link")
def contact_link(request: Request, contact_id: RowId, session: DB, csrf: CSRF = "") -> Response:
    """Link a reader to the organisation they stated at sign-up (one action, audited)."""
    account = staff_of(request, session)
    check_csrf(request, csrf)
    contact = session.get(Contact, contact_id)
    if contact is None or contact.status is ContactStatus.ERASED:
        raise issues.IssueError(f"there is no contact {contact_id}")
    try:
        _, organisation = contacts.link_stated(session, contact.email, None, actor=account.email)
        session.commit()
    except ContactFieldError as exc:
        session.rollback()
        flash(request, f"Not linked: {exc}")
        return redirect(f"/staff/contacts/{contact_id}")
    flash(request, f"Linked to {organisation.name}.")
    return redirect(f"/staff/contacts/{contact_id}")


@router.post("/contacts/{contact_id}/enable")
def contact_enable(request: Request, contact_id: RowId, session: DB, csrf: CSRF = "") -> Response:
    account = staff_of(request, session)
    check_csrf(request, csrf)
    try:
        bounces.reenable(session, contact_id, actor=account.email)
        flash(request, "Re-enabled: the contact gets mail again.")
    except bounces.NotDisabled as exc:
        flash(request, str(exc))
    return redirect(f"/staff/contacts/{contact_id}")


@router.get("/contacts/{contact_id}/data.json")
def contact_data(request: Request, contact_id: RowId, session: DB) -> Response:
    """Subject access: everything held about the contact, as a JSON download (admins)."""
    account = staff_of(request, session)
    require_role(account, StaffRole.ADMIN)
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    data = privacy.export_subject(session, contact.email)
    _audit(session, account, "subject:export", f"contact {contact_id}")
    session.commit()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.json"'},
    )


@router.post("/contacts/{contact_id}/erase")
def contact_erase(
    request: Request,
    contact_id: RowId,
    session: DB,
    csrf: CSRF = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Erase the contact's personal data, keeping a hashed suppression (admins)."""
    account = staff_of(request, session)
    check_csrf(request, csrf)
    require_role(account, StaffRole.ADMIN)
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    if confirm.strip().lower() != contact.email:
        flash(request, "Not erased: type the contact's address to confirm.")
        return redirect(f"/staff/contacts/{contact_id}")
    privacy.erase_subject(session, contact.email, actor=account.email)
    flash(request, f"Contact {contact_id} erased; the address stays suppressed.")
    return redirect("/staff/contacts")


@router.get("/audit", response_class=HTMLResponse)
def audit_log(request: Request, session: DB, actor: str = "", action: str = "") -> Response:
    account = staff_of(request, session)
    entries = audit.listing(session, actor=actor or None, action=action or None, limit=200)
    return page(
        request,
        "staff/audit.html",
        {"entries": entries, "actor": actor, "action": action, "zone": _local(request)},
        staff=account,
    )


@router.get("/bounces", response_class=HTMLResponse)
def bounce_log(request: Request, session: DB) -> Response:
    account = staff_of(request, session)
    return page(
        request,
        "staff/bounces.html",
        {"events": bounces.listing(session, limit=200), "zone": _local(request)},
        staff=account,
    )


# Known errors from the domain become a page, not a traceback.
def _unknown(request: Request, exc: Exception) -> Response:
    return page(request, "message.html", {"title": "Not found", "message": str(exc)}, status=404)


def install(app: FastAPI) -> None:
    """Register the console's error pages on ``app``."""

    @app.exception_handler(issues.IssueError)
    async def _issue_error(request: Request, exc: issues.IssueError) -> Response:
        return _unknown(request, exc)

    @app.exception_handler(calendar.CalendarError)
    async def _calendar_error(request: Request, exc: calendar.CalendarError) -> Response:
        return _unknown(request, exc)
