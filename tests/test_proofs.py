"""Proofs: preview files, Chromium screenshots at 600 and 375 px, and test sends."""

from __future__ import annotations

import asyncio
import struct
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from mailer import issues, proofs
from mailer.messages import MessageTemplate, proof_subject
from mailer.models import CapturedMessage, Issue
from mailer.tokens import TokenSigner
from mailer.transports import CaptureTransport, SmtpTransport, TransportError
from tests.outbox_fixtures import drafted
from tests.rendering_fixtures import NETWORK, WEB, definition, renderer
from tests.smtp_server import RecordingHandler, free_port, running

SIGNER = TokenSigner(b"proof-key-" * 4)


def _issue(session: Session) -> Issue:
    return drafted(session, "newsletter.md")


def _template(session: Session, issue: Issue, subject: str | None = None) -> MessageTemplate:
    rendered = issues.rendering(session, issue, renderer(), definition(issue.publication))
    return proofs.message_template(
        issue, rendered, definition(issue.publication), NETWORK, WEB.base_url, subject=subject
    )


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_a_preview_shows_a_fictitious_reader_and_chromium_renders_both_widths(
    session: Session, tmp_path: Path
) -> None:
    issue = _issue(session)
    rendered = issues.rendering(session, issue, renderer(), definition(issue.publication))
    personal = proofs.sample_personal(SIGNER, issue, NETWORK.domain)
    files = proofs.write_preview(tmp_path, rendered, _template(session, issue), personal)
    html = files.html.read_text(encoding="utf-8")
    assert "Dear Zoë Sample-Ñúñez," in html
    assert rendered.slots.nonce not in html
    assert "Dear Zoë Sample-Ñúñez," in files.text.read_text(encoding="utf-8")
    message = BytesParser(policy=policy.default).parsebytes(files.eml.read_bytes())
    assert message.defects == []
    assert SIGNER.read_recipient(personal.token).contact_id == 0  # acts on nobody
    shots = proofs.screenshots(files.html, tmp_path)
    sizes = [_png_size(shot) for shot in shots]
    assert [width for width, _ in sizes] == [600, 375]
    # The phone rendering is narrower, so the same content runs longer.
    assert sizes[1][1] > sizes[0][1] > 800


def test_the_page_has_no_horizontal_scroll_on_a_phone_and_keeps_dark_mode(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from mailer.models import Publication
    from tests.rendering_fixtures import FIXED_SLOTS, content

    rendered = renderer().render(
        content(Publication.BULLETIN), definition(Publication.BULLETIN), FIXED_SLOTS
    )
    page_html = rendered.for_reader("Ann", "token")[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=proofs.CHROMIUM, args=list(proofs.CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport={"width": 375, "height": 700})
            page.set_content(page_html)
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            page.emulate_media(color_scheme="dark")
            body = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert body == "rgb(15, 18, 22)"
            page.emulate_media(color_scheme="light")
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == (
                "rgb(238, 241, 245)"
            )
        finally:
            browser.close()


def test_test_sends_go_through_a_real_smtp_server_marked_test(session: Session) -> None:
    issue = _issue(session)
    template = _template(session, issue, subject=proof_subject(issue.subject))
    with running() as (controller, handler):
        transport = SmtpTransport("127.0.0.1", controller.port)
        replies = asyncio.run(
            proofs.send_tests(
                template,
                proofs.proof_recipients(
                    session, issue, ["me@lepnetwork.example", "colleague@lepnetwork.example"]
                ),
                issue=issue,
                signer=SIGNER,
                transport=transport,
                domain=NETWORK.domain,
            )
        )
    assert [(address, reply.code) for address, reply in replies] == [
        ("me@lepnetwork.example", 250),
        ("colleague@lepnetwork.example", 250),
    ]
    assert [m.recipients for m in handler.messages] == [
        ["me@lepnetwork.example"],
        ["colleague@lepnetwork.example"],
    ]
    received = BytesParser(policy=policy.default).parsebytes(handler.messages[0].data)
    assert str(received["Subject"]).startswith("[TEST] ")
    assert received["To"].addresses[0].addr_spec == "me@lepnetwork.example"
    ids = {
        BytesParser(policy=policy.default).parsebytes(m.data)["Message-ID"]
        for m in handler.messages
    }
    assert len(ids) == 2


def test_a_refusal_is_reported_and_an_absent_server_is_an_error(session: Session) -> None:
    issue = _issue(session)
    template = _template(session, issue)
    handler = RecordingHandler(rcpt_faults={"gone@lepnetwork.example": 550})
    with running(handler) as (controller, _):
        transport = SmtpTransport("127.0.0.1", controller.port)
        replies = asyncio.run(
            proofs.send_tests(
                template,
                proofs.proof_recipients(session, issue, ["gone@lepnetwork.example"]),
                issue=issue,
                signer=SIGNER,
                transport=transport,
                domain=NETWORK.domain,
            )
        )
    assert replies[0][1].code == 550
    assert not replies[0][1].ok
    nobody = SmtpTransport("127.0.0.1", free_port(), timeout=5)
    with pytest.raises(TransportError, match=r"cannot reach 127\.0\.0\.1"):
        asyncio.run(nobody.send("a@lepnetwork.example", ["b@lepnetwork.example"], b"x"))


def test_the_capture_transport_keeps_files_and_an_index(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    issue = _issue(session)
    template = _template(session, issue)
    transport = CaptureTransport(tmp_path / "mail", engine)
    replies = asyncio.run(
        proofs.send_tests(
            template,
            proofs.proof_recipients(session, issue, ["me@lepnetwork.example"]),
            issue=issue,
            signer=SIGNER,
            transport=transport,
            domain=NETWORK.domain,
        )
    )
    assert replies[0][1].ok
    captured = session.exec(select(CapturedMessage)).one()
    assert captured.recipients == "me@lepnetwork.example"
    assert captured.subject == issue.subject
    saved = Path(captured.path)
    assert saved.is_file()
    assert saved.parent.parent == tmp_path / "mail"
    assert captured.size == saved.stat().st_size
    assert not list((tmp_path / "mail").rglob("*.part"))
