"""What every response passes through: security headers and the console's cookies; and the
size each kind of request body may have (enforced by FastAPI's own body limit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.settings import WebSettings

CONSOLE_LIMIT = 2 * 1024 * 1024  # a console form: an issue file is far smaller

# The site's own pages: nothing inline, nothing from elsewhere, never framed.
SITE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-src 'self'; "
    "frame-ancestors 'none'"
)
# An issue's HTML as sent: inline styles (the email clients' way) and remote images only.
EMAIL_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)

TOO_LARGE_TYPE = b"text/html; charset=utf-8"
TOO_LARGE = (
    b'<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
    b'<meta name="viewport" content="width=device-width, initial-scale=1">'
    b'<title>Too large</title><link rel="stylesheet" href="/static/site.css"></head>'
    b'<body><main id="content" class="narrow"><h1>Too large</h1><p>What was sent is larger '
    b'than this page accepts. Nothing was changed.</p><p><a href="/">Home</a></p></main>'
    b"</body></html>"
)

FAILED = (
    '<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>Something went wrong</title><link rel="stylesheet" href="/static/site.css"></head>'
    '<body><main id="content" class="narrow"><h1>Something went wrong</h1><p>This request '
    "could not be completed and has been logged. Please try again; if it keeps happening, "
    'tell the network\'s staff.</p><p><a href="/">Home</a></p></main></body></html>'
)

# What routes leave in request.state for the response (see app.set_cookie).
COOKIES = "cookies_out"


@dataclass(frozen=True)
class Limits:
    """The largest body each kind of request may carry, in bytes."""

    public: int
    console: int
    upload: int
    contribution: int  # the contribute form: its fields and one image

    @classmethod
    def of(cls, web: WebSettings) -> Limits:
        return cls(
            public=web.form_limit_kb * 1024,
            console=CONSOLE_LIMIT,
            # The contacts import and the media library's upload (its form fields too).
            upload=max(web.upload_limit_mb, web.image_limit_mb + 1) * 1024 * 1024,
            contribution=(web.image_limit_mb + 1) * 1024 * 1024,
        )


class Guard:
    """ASGI middleware: gives every response its security headers and the cookies a route
    asked for (in ``request.state``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        state: dict[str, Any] = scope.setdefault("state", {})  # request.state's own dict

        replaced = False

        async def sending(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                if message["status"] == 413:  # FastAPI's body limit answers in plain text
                    replaced = True
                    message = {**message, "headers": [(b"content-type", TOO_LARGE_TYPE)]}
                    await send(_with_headers(message, path, state))
                    await send({"type": "http.response.body", "body": TOO_LARGE})
                    return
                message = _with_headers(message, path, state)
            elif replaced:
                return
            await send(message)

        await self.app(scope, receive, sending)


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every response gets (unless it set its own policy or framing)."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"content-security-policy", SITE_POLICY.encode()),
        (b"x-frame-options", b"DENY"),
    ]
    if not path.startswith(("/static/", "/media/")):
        # Pages name people (preferences, the console); none is worth caching. The media
        # library's images are named by their content and say how long to keep them.
        headers.append((b"cache-control", b"no-store"))
    return headers


def _with_headers(message: Message, path: str, state: dict[str, Any]) -> Message:
    headers = list(message.get("headers", []))
    present = {name.lower() for name, _ in headers}
    extra = [(name, value) for name, value in security_headers(path) if name not in present]
    for cookie in state.get(COOKIES, ()):
        extra.append((b"set-cookie", cookie.encode("latin-1")))
    return {**message, "headers": headers + extra}
