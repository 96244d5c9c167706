"""Public pages: sign-up, confirmation, one-click unsubscribe, preferences, archive, privacy."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from mailer import clicks, issues, media, notices, publications
from mailer.models import Issue, IssueStatus, Publication
from mailer.subscriptions import (
    LinkError,
    RateLimited,
    SignupError,
    confirm,
    confirmation_token,
    reader,
    request_signup,
    unsubscribe,
    update_preferences,
)
from mailer.transports import TransportError
from mailer.web.pages import RowId, WebContext, context, db, email_page, page

router = APIRouter()
DB = Annotated[Session, Depends(db)]
NAMES = {
    Publication.BULLETIN: "LEP Network Bulletin",
    Publication.NEWSLETTER: "LEP Network Newsletter",
}


def _invalid(request: Request, error: Exception) -> Response:
    return page(
        request,
        "message.html",
        {"title": "This link is not valid", "message": f"{error}. Nothing was changed."},
        status=400,
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return page(request, "home.html")


@router.get("/privacy", response_class=HTMLResponse)
def privacy(request: Request) -> Response:
    settings = context(request).config.settings
    return page(
        request, "privacy.html", {"reports": settings.reports, "base_url": settings.web.root}
    )


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request) -> Response:
    return page(request, "signup.html", {"values": {}, "error": None})


async def _confirm_by_email(ctx: WebContext, name: str, address: str, link: str) -> None:
    message = notices.Notices(ctx.config).confirmation(name, address, link)
    with suppress(TransportError):
        await notices.send_one(ctx.new_transport(), ctx.config, message, [address])


@router.post("/signup", response_class=HTMLResponse)
def signup(
    request: Request,
    session: DB,
    background: BackgroundTasks,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    organisation: Annotated[str, Form()] = "",
    consent: Annotated[str, Form()] = "",
) -> Response:
    ctx = context(request)
    values = {"name": name, "email": email, "organisation": organisation}
    if not consent:
        return page(
            request,
            "signup.html",
            {"values": values, "error": "Please tick the box to give your consent."},
            status=422,
        )
    ip = request.client.host if request.client else "unknown"
    try:
        result = request_signup(
            session,
            name=name,
            email=email,
            organisation=organisation,
            ip=ip,
            settings=ctx.config.settings.signup,
        )
    except SignupError as exc:
        return page(request, "signup.html", {"values": values, "error": str(exc)}, status=422)
    except RateLimited as exc:
        return page(
            request, "message.html", {"title": "Please wait", "message": str(exc)}, status=429
        )
    if result.signup is not None and result.signup.id is not None:
        token = confirmation_token(ctx.key, result.signup.id)
        link = f"{ctx.config.settings.web.root}/confirm/{token}"
        # Written and sent after the page has gone: a new address and a known one answer
        # alike, however slow the relay. The page must not differ if the relay is down
        # either: the sign-up can be tried again.
        background.add_task(_confirm_by_email, ctx, result.signup.name, result.signup.email, link)
    return page(request, "signup_done.html")


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> Response:
    # Link scanners follow GET links: confirming needs the button (POST).
    return page(request, "confirm.html", {"token": token})


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_post(request: Request, token: str, session: DB) -> Response:
    ctx = context(request)
    try:
        contact = confirm(session, ctx.key, token, ctx.config.settings.signup)
    except LinkError as exc:
        return _invalid(request, exc)
    return page(request, "confirmed.html", {"name": contact.name})


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str, session: DB) -> Response:
    # A GET changes nothing: link scanners prefetch it.
    try:
        who = reader(session, context(request).signer, token)
    except LinkError as exc:
        return _invalid(request, exc)
    publication = who.issue.publication if who.issue else Publication.NEWSLETTER
    return page(
        request,
        "unsubscribe.html",
        {"token": token, "publication": NAMES[publication], "email": who.contact.email},
    )


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe_post(request: Request, token: str, session: DB) -> Response:
    """RFC 8058 one-click: no login, cookie or CSRF token; 200, never a redirect."""
    try:
        who, publication = unsubscribe(session, context(request).signer, token)
    except LinkError as exc:
        return _invalid(request, exc)
    return page(
        request,
        "unsubscribed.html",
        {"publication": NAMES[publication], "token": token, "email": who.contact.email},
    )


@router.get("/p/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str, session: DB) -> Response:
    try:
        who = reader(session, context(request).signer, token)
    except LinkError as exc:
        return _invalid(request, exc)
    return page(
        request,
        "preferences.html",
        {"token": token, "reader": who, "names": NAMES, "saved": False, "error": None},
    )


@router.post("/p/{token}", response_class=HTMLResponse)
def preferences_post(
    request: Request,
    token: str,
    session: DB,
    name: Annotated[str, Form()] = "",
    publication: Annotated[list[str] | None, Form()] = None,
) -> Response:
    signer = context(request).signer
    wanted = {Publication(p) for p in publication or [] if p in Publication.__members__.values()}
    try:
        who = update_preferences(session, signer, token, wanted=wanted, name=name)
    except LinkError as exc:
        return _invalid(request, exc)
    except SignupError as exc:
        who = reader(session, signer, token)
        return page(
            request,
            "preferences.html",
            {"token": token, "reader": who, "names": NAMES, "saved": False, "error": str(exc)},
            status=422,
        )
    return page(
        request,
        "preferences.html",
        {"token": token, "reader": who, "names": NAMES, "saved": True, "error": None},
    )


def _email_page(
    request: Request,
    session: Session,
    issue: Issue,
    name: str,
    token: str,
    organisation_id: int = clicks.NO_ORGANISATION,
) -> Response:
    """The issue as a reader sees it; its content links count for the organisation."""
    ctx = context(request)
    definition = publications.load(ctx.config.lists_dir, issue.publication)
    rendered = issues.rendering(session, issue, ctx.renderer, definition)
    organisation = ctx.signer.organisation(issue.id or 0, organisation_id)
    html, _ = rendered.for_reader(name, token, organisation)
    return email_page(html)


@router.get("/v/{token}", response_class=HTMLResponse)
def view_online(request: Request, token: str, session: DB) -> Response:
    """The issue as its reader got it (the only way to see an internal bulletin)."""
    try:
        who = reader(session, context(request).signer, token)
    except LinkError as exc:
        return _invalid(request, exc)
    if who.issue is None or who.issue.status not in issues.FROZEN:
        return _invalid(request, LinkError("this issue is not available"))
    if who.issue.publication not in who.offered:  # the firewall, as at every door
        return _invalid(request, LinkError("this issue is for contacts of LEPs only"))
    settings = context(request).config.settings
    organisation_id = clicks.NO_ORGANISATION
    if settings.reports.count_clicks and who.issue.id is not None:
        # Counted for the reader's organisation (or no one's) and the day (mailer.clicks).
        organisation_id = clicks.view(
            session,
            who.issue.id,
            who.contact.id or 0,
            who.contact.organisation_id,
            zone=settings.calendar.zone,
            min_group=settings.reports.min_group,
        )
    return _email_page(request, session, who.issue, who.contact.name, token, organisation_id)


@router.get("/r/{token}/{position}")
def follow_link(request: Request, token: str, position: RowId, session: DB) -> Response:
    """A counted content link of an issue: straight on, in one answer, to that issue's own
    link (never anywhere else), counted for the organisation the token names."""
    ctx = context(request)
    settings = ctx.config.settings
    try:
        target = clicks.follow(
            session,
            ctx.signer,
            token,
            position,
            zone=settings.calendar.zone,
            counting=settings.reports.count_clicks,
        )
    except clicks.LinkNotFound:
        return page(
            request,
            "message.html",
            {
                "title": "Link not found",
                "message": "This link is not one of ours, or it was altered on its way. "
                "The issue it came in is in your email; its links are there too.",
            },
            status=404,
        )
    return RedirectResponse(target, status_code=302)


def _sent_newsletters(session: Session) -> list[Issue]:
    return list(
        session.exec(
            select(Issue)
            .where(
                col(Issue.publication) == Publication.NEWSLETTER,
                col(Issue.status) == IssueStatus.SENT,
            )
            .order_by(col(Issue.send_finished_at).desc())
        )
    )


@router.get("/archive", response_class=HTMLResponse)
def archive(request: Request, session: DB) -> Response:
    return page(request, "archive.html", {"issues": _sent_newsletters(session)})


@router.get("/archive/{issue_id}", response_class=HTMLResponse)
def archive_issue(request: Request, issue_id: RowId, session: DB) -> Response:
    issue = session.get(Issue, issue_id)
    if issue is None or issue not in _sent_newsletters(session):
        return page(
            request,
            "message.html",
            {"title": "Not found", "message": "There is no such newsletter in the archive."},
            status=404,
        )
    return _email_page(request, session, issue, "reader", "archive")


@router.get("/media/{name}")
def media_file(request: Request, name: str) -> Response:
    """An image of the media library, as email programs fetch it: named by its content,
    so it may be kept for a year. Only library names are served (no path, no other file)."""
    found = media.file_of(media.folder_of(context(request).config.var_dir), name)
    if found is None:
        missing = page(
            request,
            "message.html",
            {"title": "Not found", "message": "There is no image at this address."},
            status=404,
        )
        missing.headers["Cache-Control"] = "no-store"
        return missing
    return FileResponse(
        found,
        media_type=media.content_type(name),
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "Content-Disposition": "inline",
        },
    )
