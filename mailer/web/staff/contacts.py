"""Contacts in the console: list, search, import, export, edit, subject access, erasure."""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlmodel import Session, col, select
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException

from mailer import (
    audit,
    bounces,
    contacts,
    issues,
    organisations,
    privacy,
)
from mailer.contacts import ContactFieldError
from mailer.importer import ImportFileError, import_contacts
from mailer.models import (
    Contact,
    ContactStatus,
    Organisation,
    Role,
    StaffAccount,
    StaffRole,
)
from mailer.web.pages import (
    RowId,
    check_csrf,
    context,
    flash,
    page,
    redirect,
)
from mailer.web.staff.common import ADMIN, DB, Staff, audit_action, local_zone

router = APIRouter()
uploads = APIRouter()  # its own body limit: [web] upload_limit_mb


@router.get("/contacts", response_class=HTMLResponse)
def contact_list(
    request: Request, account: Staff, session: DB, q: str = "", org: str = "", stated: str = ""
) -> Response:
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


@uploads.post("/contacts/import", response_class=HTMLResponse)
async def contact_import(request: Request, account: Staff, session: DB) -> Response:
    """Import an uploaded CSV. The login is checked before a byte of the upload is read;
    the body's size is capped (``[web] upload_limit_mb``, by the router); the file is
    streamed to a temporary file, never held in memory."""
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
                    zone=local_zone(request),
                    dry_run=form.get("dry_run") not in (None, ""),
                    source=f"console upload by {account.email}: {name}",
                    batch_size=context(request).config.settings.contacts_import.batch_size,
                )
                if not report.dry_run:
                    audit_action(session, account, "contacts:import", name, report.summary())
                    session.commit()
            except ImportFileError as exc:
                # Named as uploaded: the server's temporary folder is nobody's business.
                return _import_error(request, account, str(exc).replace(str(path), name), 422)
    finally:
        await form.close()
    return page(request, "staff/import.html", {"report": report, "error": None}, staff=account)


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_view(request: Request, account: Staff, contact_id: RowId, session: DB) -> Response:
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
) -> Response:
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


@router.post("/contacts/{contact_id}/erase", dependencies=[ADMIN])
def contact_erase(
    request: Request,
    account: Staff,
    contact_id: RowId,
    session: DB,
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Erase the contact's personal data, keeping a hashed suppression (admins)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise issues.IssueError(f"there is no contact {contact_id}")
    if confirm.strip().lower() != contact.email:
        flash(request, "Not erased: type the contact's address to confirm.")
        return redirect(f"/staff/contacts/{contact_id}")
    privacy.erase_subject(session, contact.email, actor=account.email)
    flash(request, f"Contact {contact_id} erased; the address stays suppressed.")
    return redirect("/staff/contacts")
