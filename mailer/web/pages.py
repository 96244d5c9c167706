"""What every page shares: the context, page rendering, staff sessions, CSRF and cookies."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import delivery, messages, sessions, tokens
from mailer.db import MAX_ID
from mailer.models import StaffAccount, StaffRole, StaffSession
from mailer.rendering import Renderer
from mailer.settings import Config
from mailer.transports import Transport
from mailer.web import guard

HERE = FilePath(__file__).parent


# A row id in a path: anything else (abc, 99999999999999999999999) is a 404 page.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


class LoginRequired(Exception):
    """The page needs a staff login."""


class Forbidden(Exception):
    """The staff member's role does not allow this."""


@dataclass
class WebContext:
    """Everything a route needs, built once per app."""

    config: Config
    engine: Engine
    key: bytes
    signer: tokens.TokenSigner
    renderer: Renderer
    new_transport: Callable[[], Transport]
    drain: Callable[[], Awaitable[None]] | None = None
    sending: set[int] = field(default_factory=set)

    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    async def drain_outbox(self) -> None:
        """Send what is queued: through the daemon when one runs here, else a sender."""
        if self.drain is not None:
            await self.drain()
            return
        try:
            with delivery.single_sender(self.engine, self.config.var_dir):
                sender = delivery.Sender(
                    self.engine,
                    self.config,
                    self.new_transport(),
                    signer=self.signer,
                    dkim=messages.dkim_key(self.config),
                )
                await sender.run(drain=True)
        except delivery.SenderBusy:
            pass  # the sender already running will send it


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def db(request: Request) -> Iterator[Session]:
    """A database session for one request."""
    yield from context(request).session()


# Not the old signed cookie's name (path /): a browser still holding one would send both.
SESSION_COOKIE = "mailer_staff"  # the staff session's random token, nothing else
LOGIN_COOKIE = "mailer_login"  # the login form's CSRF token, before there is a session
FLASH_COOKIE = "mailer_flash"  # a signed one-line message for the next page
STAFF = "staff_session"  # request.state: the live session, once staff_of found it


def set_cookie(request: Request, name: str, value: str, *, max_age: int | None = None) -> None:
    """Have the response set a console cookie: HttpOnly, SameSite=Lax, path /staff, and
    Secure when the site is https. An empty value with max_age 0 deletes it."""
    web = context(request).config.settings.web
    parts = [f"{name}={value}", "Path=/staff", "HttpOnly", "SameSite=Lax"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if web.https:
        parts.append("Secure")
    cookies = getattr(request.state, guard.COOKIES, None)
    if cookies is None:
        cookies = []
        setattr(request.state, guard.COOKIES, cookies)
    cookies.append("; ".join(parts))


def _live(request: Request) -> StaffSession | None:
    row = getattr(request.state, STAFF, None)
    return row if isinstance(row, StaffSession) else None


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser: its session's, or before a login its own cookie's."""
    row = _live(request)
    if row is not None:
        return row.csrf
    token = request.cookies.get(LOGIN_COOKIE) or getattr(request.state, LOGIN_COOKIE, None)
    if not isinstance(token, str) or not 20 <= len(token) <= 64:
        token = secrets.token_urlsafe(24)
        setattr(request.state, LOGIN_COOKIE, token)
        set_cookie(request, LOGIN_COOKIE, token)
    return token


class _LazyCsrf:
    """The CSRF token, made only if a page prints it: public pages set no cookie."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        return csrf_token(self.request)

    def __html__(self) -> str:
        return str(self)


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a form that does not carry this browser's CSRF token (its session's once
    logged in, so call it after :func:`staff_of`).

    :raises Forbidden: the token is missing or wrong.
    """
    row = _live(request)
    expected = row.csrf if row is not None else request.cookies.get(LOGIN_COOKIE)
    if (
        not submitted
        or not isinstance(expected, str)
        or not secrets.compare_digest(submitted.encode(), expected.encode())
    ):
        raise Forbidden("the form expired or did not come from this site: please try again")


def current_session(request: Request) -> StaffSession:
    """The session :func:`staff_of` found for this request."""
    row = _live(request)
    if row is None:
        raise LoginRequired()
    return row


def staff_of(request: Request, session: Session) -> StaffAccount:
    """The logged-in member of staff, by the session the cookie names.

    :raises LoginRequired: no live session (none, logged out, ended, idle, too old, or
        the account disabled).
    """
    current = sessions.resume(
        session, request.cookies.get(SESSION_COOKIE, ""), context(request).config.settings.web
    )
    if current is None:
        raise LoginRequired()
    setattr(request.state, STAFF, current.row)
    return current.account


def log_in(request: Request, session: Session, account: StaffAccount) -> None:
    """Start a session for ``account`` (ending the one this browser had) and set its
    cookie. Flushes."""
    web = context(request).config.settings.web
    old = sessions.resume(session, request.cookies.get(SESSION_COOKIE, ""), web)
    if old is not None:
        sessions.end(session, old.row, sessions.Why.NEW_LOGIN)
    row, token = sessions.start(
        session,
        account,
        client=client_hash(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    setattr(request.state, STAFF, row)
    set_cookie(request, SESSION_COOKIE, token, max_age=int(web.session_days * 86400))
    set_cookie(request, LOGIN_COOKIE, "", max_age=0)


def log_out(request: Request) -> None:
    """Forget the session cookie in this browser (end the session with sessions.end)."""
    set_cookie(request, SESSION_COOKIE, "", max_age=0)


def client_hash(request: Request) -> str:
    """The client's address (as uvicorn saw it, through trusted proxies only), hashed."""
    address = request.client.host if request.client else "unknown"
    return sessions.client_hash(context(request).key, address)


def require_role(account: StaffAccount, *roles: StaffRole) -> None:
    """:raises Forbidden: the account has none of ``roles``."""
    if account.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise Forbidden(f"this needs the {wanted} role; you are an {account.role}")


def visitor(request: Request) -> StaffAccount | None:
    """The logged-in member of staff on a console address, if any (error pages keep the
    console's menu for them); nobody elsewhere."""
    if not request.url.path.startswith("/staff") or not request.cookies.get(SESSION_COOKIE):
        return None
    with Session(context(request).engine, expire_on_commit=False) as session:
        try:
            return staff_of(request, session)
        except LoginRequired:
            return None


def page(
    request: Request,
    name: str,
    values: dict[str, Any] | None = None,
    *,
    status: int = 200,
    staff: StaffAccount | None = None,
) -> Response:
    """A site page in the shared layout."""
    ctx = context(request)
    templates: Jinja2Templates = request.app.state.templates
    settings = ctx.config.settings
    full = {
        "network": settings.network,
        "signup": settings.signup,
        "csrf": _LazyCsrf(request),
        "staff": staff,
        "flash": _take_flash(request),
        **(values or {}),
    }
    return templates.TemplateResponse(request, name, full, status_code=status)


def _flash_signer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(context(request).key, salt="mailer.flash.v1")


def flash(request: Request, message: str) -> None:
    """A one-line message shown on the next page (a signed cookie)."""
    set_cookie(request, FLASH_COOKIE, _flash_signer(request).dumps(message[:500]))


def _take_flash(request: Request) -> str | None:
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    set_cookie(request, FLASH_COOKIE, "", max_age=0)
    try:
        message = _flash_signer(request).loads(value)
    except BadSignature:
        return None
    return message if isinstance(message, str) else None


def email_page(html: str, *, framed: bool = False) -> HTMLResponse:
    """An issue's HTML as a reader sees it, under its own policy: inline styles and remote
    images only, no script, sandboxed; ``framed`` lets the console frame it (previews)."""
    response = HTMLResponse(html)
    policy = guard.EMAIL_POLICY + (
        "; frame-ancestors 'self'" if framed else "; frame-ancestors 'none'"
    )
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "SAMEORIGIN" if framed else "DENY"
    return response


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)
