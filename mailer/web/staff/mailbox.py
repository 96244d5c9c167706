"""The mailbox of captured messages (the capture transport)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from mailer import (
    issues,
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
from mailer.web.staff.common import DB, Staff

router = APIRouter()


@router.get("/mailbox", response_class=HTMLResponse)
def mailbox(request: Request, account: Staff, session: DB) -> Response:
    captured = session.exec(
        select(CapturedMessage).order_by(col(CapturedMessage.id).desc()).limit(200)
    ).all()
    transport = context(request).config.settings.smtp.transport
    return page(
        request, "staff/mailbox.html", {"messages": captured, "transport": transport}, staff=account
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
