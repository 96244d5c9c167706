"""Contacts in the console: list (filters, pages), add, edit, bulk actions, import (checked,
then applied without a second upload), export, subject access, erasure."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException

from mailer import (
    audiences,
    audit,
    bounces,
    contacts,
    importer,
    issues,
    media,
    organisations,
    privacy,
)
from mailer import uploads as kept_uploads
from mailer.contacts import ROLE_LABELS, BulkAction, ContactFieldError, ContactFilter
from mailer.importer import ImportFileError, ImportReport, import_contacts
from mailer.models import (
    Contact,
    ContactStatus,
    LawfulBasis,
    Organisation,
    OrganisationKind,
    Publication,
    Role,
    StaffAccount,
    StaffRole,
    Subscription,
)
from mailer.web.pages import (
    RowId,
    check_csrf,
    context,
    current_session,
    flash,
    page,
    redirect,
)
from mailer.web.paging import Pager
from mailer.web.staff.common import ADMIN, DB, Staff, audit_action, local_zone

router = APIRouter()
uploads = APIRouter()  # its own body limit: [web] upload_limit_mb


PAGE_SIZE = 50
FILTERS = ("q", "org", "kind", "role", "status", "publication", "stated")
PUBLICATION_CHOICES = (  # the add form's choice: the importer's `publications` column
    ("", "What the organisation's contacts get (LEP: bulletin and newsletter; others: newsletter)"),
    ("newsletter", "The newsletter only"),
    ("bulletin;newsletter", "The bulletin and the newsletter (LEP contacts only)"),
    ("bulletin", "The bulletin only (LEP contacts only)"),
    ("none", "Nothing for now"),
)


_E = TypeVar("_E", OrganisationKind, Role, ContactStatus, Publication)


def _enum_or_none(kind: type[_E], raw: str) -> _E | None:
    try:
        return kind(raw) if raw else None
    except ValueError:
        return None  # a hand-made query: shown as "any"


def _filters(params: dict[str, str]) -> ContactFilter:
    return ContactFilter(
        organisation=params.get("org") or None,
        role=_enum_or_none(Role, params.get("role", "")),
        search=params.get("q") or None,
        stated=bool(params.get("stated")),
        kind=_enum_or_none(OrganisationKind, params.get("kind", "")),
        status=_enum_or_none(ContactStatus, params.get("status", "")),
        publication=_enum_or_none(Publication, params.get("publication", "")),
    )


def _org_names(session: Session) -> list[str]:
    return list(session.exec(select(Organisation.name).order_by(col(Organisation.name))))


@router.get("/contacts", response_class=HTMLResponse)
def contact_list(request: Request, account: Staff, session: DB) -> Response:
    params = {k: request.query_params.get(k, "").strip()[:200] for k in FILTERS}
    where, raw_page = _filters(params), request.query_params.get("page")
    asked = Pager.asked(raw_page, PAGE_SIZE)
    rows, total = contacts.listing(session, where, offset=asked, limit=PAGE_SIZE)
    pager = Pager.of("/staff/contacts", raw_page, PAGE_SIZE, total, params)
    if pager.offset != asked:  # beyond the end: the last page
        rows, total = contacts.listing(session, where, offset=pager.offset, limit=PAGE_SIZE)
    return page(
        request,
        "staff/contacts.html",
        {
            "rows": rows,
            "total": total,
            "pager": pager,
            "params": params,
            "filtered": any(params.values()),
            "kinds": list(OrganisationKind),
            "roles": ROLE_LABELS,
            "statuses": contacts.STAFF_STATUSES,
            "publications": list(Publication),
            "org_names": _org_names(session),
            "actions": list(BulkAction),
        },
        staff=account,
    )


def _back_to_list(query: str) -> str:
    """The list page a form came from: only its own filters and page, never another path."""
    kept = [(k, v) for k, v in parse_qsl(query[:2000]) if k in (*FILTERS, "page")]
    return "/staff/contacts" + (f"?{urlencode(kept)}" if kept else "")


@router.post("/contacts/bulk")
def contact_bulk(
    request: Request,
    account: Staff,
    session: DB,
    action: Annotated[str, Form()] = "",
    ids: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    back: Annotated[str, Form()] = "",
) -> Response:
    """Do one action to the contacts ticked on a list page, each by the domain's rules."""
    target = _back_to_list(back)
    chosen = [int(i) for i in ids if i.isascii() and i.isdigit() and 0 < len(i) < 12]
    try:
        what = BulkAction(action)
    except ValueError:
        flash(request, "Nothing done: choose an action.")
        return redirect(target)
    if not chosen:
        flash(request, "Nothing done: tick the contacts to change first.")
        return redirect(target)
    outcome = contacts.apply_bulk(session, chosen, what, actor=account.email)
    session.commit()
    message = f"{what.label}: {outcome.summary()}."
    if outcome.refused:
        message += " Refused: " + "; ".join(outcome.refused[:5])
        if len(outcome.refused) > 5:
            message += f"; and {len(outcome.refused) - 5} more"
    flash(request, message)
    return redirect(target)


def _add_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    values: dict[str, str],
    error: ContactFieldError | None = None,
) -> Response:
    orgs = session.exec(select(Organisation).order_by(col(Organisation.name))).all()
    return page(
        request,
        "staff/contact_new.html",
        {
            "values": values,
            "error": str(error) if error else None,
            "error_field": error.field if error else "",
            "orgs": orgs,
            "roles": ROLE_LABELS,
            "bases": list(LawfulBasis),
            "publication_choices": PUBLICATION_CHOICES,
        },
        status=422 if error else 200,
        staff=account,
    )


ADD_FIELDS = (
    "email",
    "name",
    "organisation",
    "role",
    "lawful_basis",
    "consented_at",
    "source",
    "consent_wording",
    "publications",
)


@router.get("/contacts/new", response_class=HTMLResponse)
def contact_new_form(request: Request, account: Staff, session: DB) -> Response:
    return _add_page(request, session, account, dict.fromkeys(ADD_FIELDS, ""))


@router.post("/contacts/new", response_class=HTMLResponse)
async def contact_add(request: Request, account: Staff, session: DB) -> Response:
    """Add one contact, checked as an imported row is (lawful basis, firewall, suppression)."""
    form = await request.form()
    values = {k: v[:500] if isinstance(v := form.get(k, ""), str) else "" for k in ADD_FIELDS}
    try:
        contact = importer.add_contact(
            session,
            values,
            zone=local_zone(request),
            actor=account.email,
            source=values["source"] or f"added in the console by {account.email}",
        )
        session.commit()
    except ContactFieldError as exc:
        session.rollback()
        return _add_page(request, session, account, values, exc)
    flash(request, f"Added {contact.name}.")
    return redirect(f"/staff/contacts/{contact.id}")


@router.get("/contacts/export.csv")
def contact_export(request: Request, account: Staff, session: DB) -> Response:
    audit_action(session, account, "contacts:export", "contacts.csv", "every contact")
    session.commit()
    buffer = io.StringIO()
    contacts.export_csv(session, buffer)
    return StreamingResponse(
        iter([buffer.getvalue()]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


@router.get("/contacts/import", response_class=HTMLResponse)
def contact_import_form(request: Request, account: Staff, session: DB) -> Response:
    return page(request, "staff/import.html", {"report": None, "error": None}, staff=account)


def _upload_name(filename: str) -> str:
    """The uploaded file's own name, made safe to create in a folder of ours."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename.replace("\\", "/")).name)[:100].strip()
    return name if name.strip(".") else "upload.csv"


def _import_error(request: Request, account: StaffAccount, error: str, status: int) -> Response:
    return page(
        request, "staff/import.html", {"report": None, "error": error}, status=status, staff=account
    )


PROBLEMS = "problems"  # the problems report, kept with the upload


def _owner(request: Request) -> str:
    """Whose a kept upload is: this login's session (another login cannot use it)."""
    return f"staff-session:{current_session(request).id}"


def _keep_for(request: Request) -> timedelta:
    minutes = context(request).config.settings.contacts_import.keep_upload_minutes
    return timedelta(minutes=minutes)


def _run_import(
    request: Request,
    session: Session,
    account: StaffAccount,
    kept: kept_uploads.Kept,
    *,
    dry_run: bool,
) -> Response:
    """Import the kept file; keep it after a dry run (for "apply"), and the problems report."""
    path, name = kept.upload, kept.name
    try:
        report = import_contacts(
            session,
            path,
            zone=local_zone(request),
            dry_run=dry_run,
            source=f"console upload by {account.email}: {name}",
            batch_size=context(request).config.settings.contacts_import.batch_size,
        )
        if not report.dry_run:
            audit_action(session, account, "contacts:import", name, report.summary())
            session.commit()
    except ImportFileError as exc:
        kept_uploads.discard(kept)
        # Named as uploaded: the server's folders are nobody's business.
        return _import_error(request, account, str(exc).replace(str(path), name), 422)
    if report.rejected or report.skipped:
        with kept.file(PROBLEMS).open("w", encoding="utf-8", newline="") as out:
            importer.write_problems(report, out)
    if not dry_run:
        path.unlink(missing_ok=True)  # applied: only the problems report stays
        if not (report.rejected or report.skipped):
            kept_uploads.discard(kept)
    return _report_page(request, account, report, kept)


def _report_page(
    request: Request, account: StaffAccount, report: ImportReport, kept: kept_uploads.Kept
) -> Response:
    return page(
        request,
        "staff/import.html",
        {
            "report": report,
            "name": kept.name,
            "error": None,
            "token": kept.token,
            "problems": kept.file(PROBLEMS).exists(),
            "apply": report.dry_run and report.rows > 0,
            "keep_minutes": int(_keep_for(request).total_seconds() // 60),
        },
        staff=account,
    )


@uploads.post("/contacts/import", response_class=HTMLResponse)
async def contact_import(request: Request, account: Staff, session: DB) -> Response:
    """Import an uploaded CSV. The login is checked before a byte of the upload is read;
    the body's size is capped (``[web] upload_limit_mb``, by the router); the file is
    streamed to a folder of its own under var/, never held in memory, and kept after a
    dry run so that it can be applied without a second upload."""
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
        var_dir = context(request).config.var_dir
        kept_uploads.purge(var_dir, _keep_for(request))
        kept = kept_uploads.keep(var_dir, _owner(request), name)
        with kept.upload.open("wb") as out:
            while chunk := await upload.read(1024 * 1024):
                out.write(chunk)
    finally:
        await form.close()
    dry_run = form.get("dry_run") not in (None, "")
    return _run_import(request, session, account, kept, dry_run=dry_run)


Token = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{24}$")]


def _kept(request: Request, token: str) -> kept_uploads.Kept:
    """The kept upload ``token`` names.

    :raises IssueError: gone (expired, used, or another login's): a not-found page.
    """
    try:
        return kept_uploads.find(
            context(request).config.var_dir, token, _owner(request), _keep_for(request)
        )
    except kept_uploads.UploadGone as exc:
        raise issues.IssueError(f"{exc}: upload the file again") from None


@router.post("/contacts/import/apply", response_class=HTMLResponse)
def contact_import_apply(
    request: Request, account: Staff, session: DB, token: Annotated[str, Form()] = ""
) -> Response:
    """Apply a file a dry run checked, from where the dry run kept it."""
    kept = _kept(request, token)
    if not kept.upload.exists():
        raise issues.IssueError("that file was applied already: upload it again to re-check it")
    kept.file(PROBLEMS).unlink(missing_ok=True)
    return _run_import(request, session, account, kept, dry_run=False)


@router.get("/contacts/import/{token}/problems.csv")
def contact_import_problems(request: Request, account: Staff, token: Token) -> Response:
    """The rows an import rejected or skipped, as CSV (line, outcome, email, field, reason)."""
    kept = _kept(request, token)
    try:
        body = kept.file(PROBLEMS).read_bytes()
    except OSError:
        raise issues.IssueError("this import had no problems to report") from None
    download = re.sub(r"[^\w.-]", "_", Path(kept.name).stem)[:80] + "-problems.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{download}"'},
    )


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_view(request: Request, account: Staff, contact_id: RowId, session: DB) -> Response:
    return _contact_page(request, session, account, contact_id)


def _contact_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    contact_id: int,
    error: ContactFieldError | str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    contact = session.get(Contact, contact_id)
    row = contacts.contact_row(session, contact_id)  # by its id, never by its address
    if contact is None or row is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    orgs = session.exec(select(Organisation).order_by(col(Organisation.name))).all()
    directory = organisations.Directory(orgs)
    try:
        stated = directory.find(contact.stated_organisation or "")
    except organisations.AmbiguousOrganisation:
        stated = None
    held = {
        s.publication: s
        for s in session.exec(
            select(Subscription).where(col(Subscription.contact_id) == contact_id)
        )
    }
    subscriptions = [
        {
            "publication": publication,
            "offered": audiences.may_receive(row.organisation_kind, publication),
            "active": publication in row.publications,
            "ended": held[publication].status if publication in row.unsubscribed else None,
        }
        for publication in Publication
    ]
    return page(
        request,
        "staff/contact.html",
        {
            "contact": contact,
            "row": row,
            "orgs": orgs,
            "stated": stated,
            "roles": list(Role),
            "role_labels": ROLE_LABELS,
            "statuses": contacts.STAFF_STATUSES,
            "subscriptions": subscriptions,
            "error": str(error) if error else None,
            "error_field": error.field if isinstance(error, ContactFieldError) else "",
            "values": values or {"name": contact.name, "email": contact.email},
            "bounces": bounces.listing(session, contact_id=contact_id),
            "history": audit.listing(session, target=f"contact {contact_id}", limit=20),
            "admin": account.role is StaffRole.ADMIN,
            "zone": local_zone(request),
        },
        status=422 if error else 200,
        staff=account,
    )


@router.post("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_save(
    request: Request,
    account: Staff,
    contact_id: RowId,
    session: DB,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    organisation_id: Annotated[int, Form()] = 0,
    email: Annotated[str | None, Form()] = None,
) -> Response:
    """Save the name, address, role and organisation (the address checked and unique)."""
    try:
        contacts.edit(
            session,
            contact_id,
            name=name,
            role=Role(role),
            organisation_id=organisation_id,
            email=email,
            actor=account.email,
        )
        session.commit()
    except ValueError as exc:  # ContactFieldError, or a role not in the list
        session.rollback()
        values = {"name": name[:500], "email": (email or "")[:500]}
        return _contact_page(request, session, account, contact_id, exc_of(exc), values or None)
    flash(request, "Saved.")
    return redirect(f"/staff/contacts/{contact_id}")


def exc_of(exc: ValueError) -> ContactFieldError:
    """A field error to show: a bad role (a hand-made form) is the role's."""
    return exc if isinstance(exc, ContactFieldError) else ContactFieldError(f"role: {exc}", "role")


@router.post("/contacts/{contact_id}/subscriptions", response_class=HTMLResponse)
def contact_subscriptions(
    request: Request,
    account: Staff,
    contact_id: RowId,
    session: DB,
    publications: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    """Set what the contact receives: the firewall and the reader's own unsubscriptions
    hold (the domain refuses the rest)."""
    wanted = {p for p in Publication if p.value in publications}
    try:
        changed = contacts.set_subscriptions(session, contact_id, wanted, actor=account.email)
        session.commit()
    except ContactFieldError as exc:
        session.rollback()
        return _contact_page(request, session, account, contact_id, exc)
    flash(request, f"Subscriptions: {', '.join(changed)}." if changed else "Nothing changed.")
    return redirect(f"/staff/contacts/{contact_id}")


@router.post("/contacts/{contact_id}/status", response_class=HTMLResponse)
def contact_status(
    request: Request,
    account: Staff,
    contact_id: RowId,
    session: DB,
    status: Annotated[str, Form()] = "",
) -> Response:
    """Disable, enable or suppress the contact (a suppressed address stays suppressed)."""
    try:
        chosen = next((s for s in contacts.STAFF_STATUSES if s.value == status), None)
        if chosen is None:
            raise ContactFieldError("status: choose one from the list", "status")
        changed = contacts.set_status(session, contact_id, chosen, actor=account.email)
        session.commit()
    except ContactFieldError as exc:
        session.rollback()
        return _contact_page(request, session, account, contact_id, exc)
    flash(request, f"Status: {chosen}." if changed else "Nothing changed.")
    return redirect(f"/staff/contacts/{contact_id}")


@router.post("/contacts/{contact_id}/link")
def contact_link(request: Request, account: Staff, contact_id: RowId, session: DB) -> Response:
    """Link a reader to the organisation they stated at sign-up (one action, audited)."""
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
def contact_enable(request: Request, account: Staff, contact_id: RowId, session: DB) -> Response:
    try:
        bounces.reenable(session, contact_id, actor=account.email)
        flash(request, "Re-enabled: the contact gets mail again.")
    except bounces.NotDisabled as exc:
        flash(request, str(exc))
    return redirect(f"/staff/contacts/{contact_id}")


@router.get("/contacts/{contact_id}/data.json", dependencies=[ADMIN])
def contact_data(request: Request, account: Staff, contact_id: RowId, session: DB) -> Response:
    """Subject access: everything held about the contact, as a JSON download (admins)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    data = privacy.export_subject(session, contact.email)
    audit_action(session, account, "subject:export", f"contact {contact_id}")
    session.commit()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.json"'},
    )


@router.get("/contacts/{contact_id}/erase", response_class=HTMLResponse, dependencies=[ADMIN])
def contact_erase_confirm(
    request: Request, account: Staff, contact_id: RowId, session: DB
) -> Response:
    """What erasing will do, asked before it is done (admins). Changes nothing."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    return page(
        request,
        "staff/confirm.html",
        {
            "title": f"Erase {contact.name}",
            "question": f"Erase {contact.name} <{contact.email}>? This cannot be undone.",
            "points": [
                "Their name, address, subscriptions, deliveries, bounces and sign-ups are "
                "deleted; the audit log keeps no address.",
                "The address is kept only as a hashed suppression, so it is never mailed or "
                "imported again.",
                "Download everything held about them first if they asked for a copy.",
            ],
            "action": f"/staff/contacts/{contact_id}/erase",
            "typed": {"label": "Type the contact's address to confirm", "name": "confirm"},
            "button": "Erase for good",
            "danger": True,
            "back": f"/staff/contacts/{contact_id}",
        },
        staff=account,
    )


@router.post("/contacts/{contact_id}/erase", dependencies=[ADMIN])
def contact_erase(
    request: Request,
    account: Staff,
    contact_id: RowId,
    session: DB,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Erase the contact's personal data, keeping a hashed suppression (admins), once the
    confirmation page's form carries the contact's address typed out."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    if confirm.strip().lower() != contact.email:
        flash(request, "Not erased: type the contact's address to confirm.")
        return redirect(f"/staff/contacts/{contact_id}/erase")
    privacy.erase_subject(
        session,
        contact.email,
        actor=account.email,
        media_folder=media.folder_of(context(request).config.var_dir),
    )
    flash(request, f"Contact {contact_id} erased; the address stays suppressed.")
    return redirect("/staff/contacts")
