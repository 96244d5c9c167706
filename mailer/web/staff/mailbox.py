"""The mailbox of captured messages (the capture transport): search, pages, each message."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from mailer import (
    issues,
    transports,
)
from mailer.db import get_by_id
from mailer.models import (
    CapturedMessage,
)
from mailer.web.pages import (
    RowId,
    context,
    email_page,
    page,
)
from mailer.web.paging import Pager
from mailer.web.staff.common import DB, Staff, local_zone

router = APIRouter()


PAGE_SIZE = 50


@router.get("/mailbox", response_class=HTMLResponse)
def mailbox(request: Request, account: Staff, session: DB, q: str = "") -> Response:
    """Captured messages, newest first, a page at a time; ``q`` searches subject and
    recipients."""
    search, raw_page = q.strip()[:200], request.query_params.get("page")
    asked = Pager.asked(raw_page, PAGE_SIZE)
    captured, total = transports.captured(session, search=search, offset=asked, limit=PAGE_SIZE)
    pager = Pager.of("/staff/mailbox", raw_page, PAGE_SIZE, total, {"q": search})
    if pager.offset != asked:  # beyond the end: the last page
        captured, total = transports.captured(
            session, search=search, offset=pager.offset, limit=PAGE_SIZE
        )
    transport = context(request).config.settings.smtp.transport
    return page(
        request,
        "staff/mailbox.html",
        {
            "messages": captured,
            "transport": transport,
            "q": search,
            "pager": pager,
            "total": total,
            "zone": local_zone(request),
        },
        staff=account,
    )


def _captured(session: Session, message_id: int) -> EmailMessage:
    captured = get_by_id(session, CapturedMessage, message_id)
    if captured is None:
        raise issues.IssueError(f"there is no captured message {message_id}")
    parsed = BytesParser(policy=policy.default).parsebytes(Path(captured.path).read_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


@router.get("/mailbox/{message_id}", response_class=HTMLResponse)
def mailbox_message(request: Request, account: Staff, message_id: RowId, session: DB) -> Response:
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
    part = _captured(session, message_id).get_body(("html",))
    return email_page(part.get_content() if part is not None else "", framed=True)
