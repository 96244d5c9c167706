"""The web application: shared context, page rendering, sessions and CSRF for the console."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.middleware.sessions import SessionMiddleware

from mailer import delivery, messages, tokens
from mailer.models import StaffAccount, StaffRole
from mailer.rendering import Renderer
from mailer.settings import Config
from mailer.transports import Transport, from_config

HERE = Path(__file__).parent


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


def csrf_token(request: Request) -> str:
    """This browser session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
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
    """Refuse a form that does not carry this session's CSRF token.

    :raises Forbidden: the token is missing or wrong.
    """
    expected = request.session.get("csrf")
    if (
        not submitted
        or not isinstance(expected, str)
        or not secrets.compare_digest(submitted, expected)
    ):
        raise Forbidden("the form expired or did not come from this site: please try again")


def staff_of(request: Request, session: Session) -> StaffAccount:
    """The logged-in member of staff.

    :raises LoginRequired: nobody is logged in (or the account is gone).
    """
    staff_id = request.session.get("staff_id")
    account = session.get(StaffAccount, staff_id) if isinstance(staff_id, int) else None
    if account is None:
        raise LoginRequired()
    return account


def require_role(account: StaffAccount, *roles: StaffRole) -> None:
    """:raises Forbidden: the account has none of ``roles``."""
    if account.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise Forbidden(f"this needs the {wanted} role; you are an {account.role}")


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
        "flash": request.session.pop("flash", None),
        **(values or {}),
    }
    return templates.TemplateResponse(request, name, full, status_code=status)


def flash(request: Request, message: str) -> None:
    """A one-line message shown on the next page."""
    request.session["flash"] = message


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def create_app(
    config: Config,
    engine: Engine,
    *,
    transport: Callable[[], Transport] | None = None,
    drain: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The whole site: public pages and the staff console."""
    from mailer.web import console, public

    key = tokens.load_key(config.secrets.secret_key, config.var_dir)
    settings = config.settings
    app = FastAPI(title="LEP Network mailer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = WebContext(
        config=config,
        engine=engine,
        key=key,
        signer=tokens.TokenSigner(key),
        renderer=Renderer.for_config(config),
        new_transport=transport or (lambda: from_config(config, engine)),
        drain=drain,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
    )
    app.state.templates = Jinja2Templates(env=env)
    app.add_middleware(
        SessionMiddleware,
        secret_key=key.decode("utf-8", "replace") + ":session",
        session_cookie="mailer_session",
        max_age=int(settings.web.session_hours * 3600),
        same_site="lax",
        https_only=settings.web.secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(public.router)
    app.include_router(console.router)
    console.install(app)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return redirect(f"/staff/login?next={request.url.path}")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return page(
            request, "message.html", {"title": "Not allowed", "message": str(exc)}, status=403
        )

    @app.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response

    return app
