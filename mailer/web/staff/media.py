"""The media library in the console: the images, their upload (alt text required), and
their alt text changed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUpload

from mailer import media
from mailer.models import MediaImage, StaffAccount
from mailer.web.pages import RowId, context, flash, page, redirect
from mailer.web.staff.common import DB, Staff

router = APIRouter()
uploads = APIRouter()  # its own body limit: the larger of [web] upload_limit_mb, image_limit_mb


def _media_page(
    request: Request,
    session: Session,
    account: StaffAccount,
    *,
    errors: dict[str, str] | None = None,
    alt: str = "",
    status: int = 200,
) -> Response:
    settings = context(request).config.settings
    root = settings.web.root
    return page(
        request,
        "staff/media.html",
        {
            "images": media.listing(session),
            "root": root,
            "url": media.url,
            "http_site": not root.startswith("https://"),
            "limit_mb": settings.web.image_limit_mb,
            "errors": errors or {},
            "alt": alt,
        },
        status=status,
        staff=account,
    )


@router.get("/media", response_class=HTMLResponse)
def media_list(request: Request, account: Staff, session: DB) -> Response:
    return _media_page(request, session, account)


class _Refused(Exception):
    def __init__(self, errors: dict[str, str], alt: str) -> None:
        super().__init__(errors)
        self.errors, self.alt = errors, alt


async def _store(
    request: Request, session: Session, account: StaffAccount, form: FormData
) -> tuple[MediaImage, bool]:
    alt = form.get("alt")
    alt = alt if isinstance(alt, str) else ""
    upload = form.get("file")
    if not isinstance(upload, StarletteUpload) or not upload.filename:
        raise _Refused({"file": "Image: choose a PNG, JPEG, GIF or WebP file to upload"}, alt)
    try:
        media.clean_alt(alt)
    except media.MediaError as exc:
        raise _Refused({"alt": str(exc)}, alt) from None
    config = context(request).config
    limit = config.settings.web.image_limit_mb * 1024 * 1024
    if upload.size is not None and upload.size > limit:  # not read at all
        raise _Refused(
            {"file": f"Image: {media.too_large(upload.filename, upload.size, limit)}"}, alt
        )
    data = await upload.read(limit + 1)  # no more: one byte over is enough to refuse it
    try:
        return await run_in_threadpool(  # decoding and encoding take a while: not on the loop
            media.store,
            session,
            data,
            filename=upload.filename,
            alt=alt,
            uploaded_by=account.email,
            folder=media.folder_of(config.var_dir),
            limit=limit,
        )
    except media.MediaError as exc:
        raise _Refused({"file": f"Image: {exc}"}, alt) from None


@uploads.post("/media", response_class=HTMLResponse)
async def media_upload(request: Request, account: Staff, session: DB) -> Response:
    """Add an image: decoded and verified (see :func:`mailer.media.check_image`); what
    was typed is kept when it is refused."""
    form = await request.form()
    try:
        row, new = await _store(request, session, account, form)
    except _Refused as refused:
        return _media_page(
            request, session, account, errors=refused.errors, alt=refused.alt, status=422
        )
    finally:
        await form.close()
    session.commit()
    flash(
        request,
        f"Added {row.original_name or row.name} ({row.width}×{row.height}) to the library."  # noqa: RUF001
        if new
        else f"That image is already in the library, as “{row.alt}”.",
    )
    return redirect(f"/staff/media#m{row.id}")


@router.post("/media/{media_id}/alt")
def media_alt(
    request: Request,
    account: Staff,
    media_id: RowId,
    session: DB,
    alt: Annotated[str, Form()] = "",
) -> Response:
    try:
        row = media.set_alt(session, media_id, alt, by=account.email)
        session.commit()
        flash(request, f"Alt text changed: “{row.alt}”. Issues already written keep theirs.")
    except media.MediaError as exc:
        session.rollback()
        flash(request, f"Not changed: {exc}")
    return redirect(f"/staff/media#m{media_id}")
