"""The web application: the site's routers, error pages and middleware, put together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailer import staff, tokens
from mailer.rendering import Renderer
from mailer.settings import Config
from mailer.transports import Transport, from_config
from mailer.web import contribute, guard, ops, public
from mailer.web import staff as console
from mailer.web.pages import (
    HERE,
    SESSION_COOKIE,
    Forbidden,
    LoginRequired,
    WebContext,
    log_out,
    page,
    redirect,
    visitor,
)


def create_app(
    config: Config,
    engine: Engine,
    *,
    transport: Callable[[], Transport] | None = None,
    drain: Callable[[], Awaitable[None]] | None = None,
    daemon_state: Callable[[], str | None] = lambda: None,
) -> FastAPI:
    """The whole site: public pages, the staff console, and health, readiness and metrics
    (``daemon_state``: the state of the daemon this process runs, if any)."""
    key = tokens.load_key(config.secrets.secret_key, config.var_dir)
    settings = config.settings
    staff.prepare()
    limits = guard.Limits.of(settings.web)
    app = FastAPI(
        title="LEP Network mailer",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # its redirects echo the Host header; ours are relative
    )
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
    app.add_middleware(guard.Guard)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # Bodies beyond these are refused with 413 before (or while) they are read.
    app.include_router(public.router, max_body_size=limits.public)
    app.include_router(contribute.router, max_body_size=limits.contribution)
    app.include_router(console.public, max_body_size=limits.console)
    app.include_router(console.uploads, max_body_size=limits.upload)  # before {contact_id}
    app.include_router(console.router, max_body_size=limits.console)
    app.state.probe = ops.Probe(config, engine, daemon_state)
    app.include_router(ops.router)
    console.install(app)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        if request.cookies.get(SESSION_COOKIE):
            log_out(request)  # an ended session's cookie is of no more use
        # Back to the page asked for after the login (a GET: a form's target is no page).
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        back = wanted if request.method == "GET" else "/staff"
        return redirect(f"/staff/login?next={quote(back)}")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return page(
            request, "message.html", {"title": "Not allowed", "message": str(exc)}, status=403
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 404 and len(path) > 1 and path.endswith("/"):
            # Relative, and never two leading slashes (a link to another site).
            target = "/" + path.strip("/")
            query = request.url.query
            return RedirectResponse(target + (f"?{query}" if query else ""), status_code=308)
        titles = {404: "Not found", 405: "Not allowed"}  # 413: guard.TOO_LARGE
        messages_ = {
            404: "There is no page at this address.",
            405: "This page does not take that kind of request.",
        }
        return page(
            request,
            "message.html",
            {
                "title": titles.get(exc.status_code, "Error"),
                "message": messages_.get(exc.status_code, str(exc.detail)),
            },
            status=exc.status_code,
            staff=visitor(request),
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, _: DataError) -> Response:
        # A value the database refuses (a NUL byte on PostgreSQL, say), wherever it came in.
        return page(
            request,
            "message.html",
            {
                "title": "Not understood",
                "message": "What was sent holds a character that cannot be used here (a NUL "
                "byte, say). Nothing was changed.",
            },
            status=400,
        )

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> Response:
        # Answered outside the guard (Starlette's error middleware): its headers here too.
        response = HTMLResponse(guard.FAILED, status_code=500)
        for name, value in guard.security_headers(request.url.path):
            response.headers[name.decode()] = value.decode()
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(error["loc"][-1]) for error in exc.errors() if error.get("loc")})
        in_path = any(error.get("loc", ("",))[0] == "path" for error in exc.errors())
        if in_path:  # /archive/abc or an id no row can have: there is no such page
            return page(
                request,
                "message.html",
                {"title": "Not found", "message": "There is no page at this address."},
                status=404,
                staff=visitor(request),
            )
        return page(
            request,
            "message.html",
            {
                "title": "Not understood",
                "message": "The form could not be read: check "
                + (", ".join(fields) or "what you sent")
                + " and try again. Nothing was changed.",
            },
            status=400,
        )

    return app
