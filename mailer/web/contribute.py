"""The contribute form: a LEP contact sends news, an event or best practice for the next
bulletin through the signed link in its footer (its own router and body limit)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.datastructures import UploadFile as StarletteUpload

from mailer import clock, contributions, issues, media
from mailer.contributions import (
    ContributionInvalid,
    Contributor,
    Fields,
    NotAContributor,
    TooManyContributions,
    Upload,
)
from mailer.models import ContributionKind
from mailer.subscriptions import LinkError
from mailer.web.pages import WebContext, context, page

router = APIRouter()
FIELDS = tuple(f for f in Fields.__dataclass_fields__)


def _refused(request: Request, error: Exception) -> Response:
    ctx = context(request)
    if isinstance(error, NotAContributor):
        return page(
            request,
            "message.html",
            {
                "title": "Send news for the bulletin",
                "message": "Thank you for wanting to share news. The bulletin is written for "
                "and with the Local Enterprise Partnerships, so this form is for their "
                "contacts only. To reach the LEP Network, email "
                f"{ctx.config.settings.network.contact_email}.",
            },
            status=403,
        )
    return page(
        request,
        "message.html",
        {"title": "This link is not valid", "message": f"{error}. Nothing was sent."},
        status=400,
    )


def _form(
    request: Request,
    token: str,
    who: Contributor,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    settings = context(request).config.settings
    return page(
        request,
        "contribute.html",
        {
            "token": token,
            "who": who,
            "kinds": list(ContributionKind),
            "typed": {name: "" for name in FIELDS} | (typed or {}),
            "errors": errors or {},
            "limits": settings.contributions,
            "image_mb": settings.web.image_limit_mb,
            "today": clock.now().astimezone(settings.calendar.zone).date().isoformat(),
        },
        status=status,
    )


def _who(ctx: WebContext, token: str) -> Contributor:
    with Session(ctx.engine, expire_on_commit=False) as session:
        return contributions.contributor(session, ctx.signer, token)


@router.get("/contribute/{token}", response_class=HTMLResponse)
def contribute_page(request: Request, token: str) -> Response:
    try:
        who = _who(context(request), token)
    except (LinkError, NotAContributor) as exc:
        return _refused(request, exc)
    return _form(request, token, who)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


@router.post("/contribute/{token}", response_class=HTMLResponse)
async def contribute(request: Request, token: str, background: BackgroundTasks) -> Response:
    ctx = context(request)
    try:
        who = await run_in_threadpool(_who, ctx, token)
    except (LinkError, NotAContributor) as exc:
        return _refused(request, exc)
    settings = ctx.config.settings
    limit = settings.web.image_limit_mb * 1024 * 1024
    async with request.form(max_files=1, max_fields=20) as form:
        typed = {name: _text(form, name) for name in FIELDS}
        upload = form.get("image")
        image = None
        errors: dict[str, str] = {}
        if isinstance(upload, StarletteUpload) and upload.filename:
            if upload.size is not None and upload.size > limit:
                errors["image"] = f"Image: {media.too_large(upload.filename, upload.size, limit)}"
            else:
                image = Upload(await upload.read(limit + 1), upload.filename)
    fields = Fields(**typed)
    today = clock.now().astimezone(settings.calendar.zone).date()

    def record() -> int:
        with Session(ctx.engine, expire_on_commit=False) as session:
            checked = contributions.check(
                fields, settings.contributions, has_image=image is not None, today=today
            )
            row = contributions.submit(
                session,
                who,
                checked,
                image=image,
                settings=settings,
                media_folder=media.folder_of(ctx.config.var_dir),
            )
            session.commit()
            assert row.id is not None
            return row.id

    try:
        if errors:
            raise ContributionInvalid(errors)
        contribution_id = await run_in_threadpool(record)
    except ContributionInvalid as exc:
        shown = dict(exc.errors)
        if image is not None and "image" not in shown:
            shown["image"] = "Image: please choose the picture again (a form cannot keep it)"
        return _form(request, token, who, typed=typed, errors=shown, status=422)
    except TooManyContributions as exc:
        return page(
            request,
            "message.html",
            {
                "title": "Thank you: that is enough for today",
                "message": f"{str(exc).capitalize()}.",
            },
            status=429,
        )
    background.add_task(
        contributions.send_notices,
        ctx.engine,
        ctx.config,
        ctx.signer,
        ctx.new_transport,
        only=contribution_id,
    )
    return _done(request, ctx, contribution_id, who)


def _done(request: Request, ctx: WebContext, contribution_id: int, who: Contributor) -> Response:
    with Session(ctx.engine, expire_on_commit=False) as session:
        shown = contributions.entry(session, contribution_id)
    slot = shown.proposal.slot
    values: dict[str, Any] = {
        "entry": shown,
        "who": who,
        "slot": issues.slot_label(slot.send_at, ctx.config.settings.calendar.zone) if slot else "",
    }
    return page(request, "contributed.html", values)
