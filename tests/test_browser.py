"""The site in Debian's Chromium (Playwright) against the app served on 127.0.0.1.

A reader signs up, confirms from the captured email and unsubscribes from a newsletter's
link; staff log in, compose, preview, approve, send to the capture and watch the report.
Screenshots of the key pages are kept in tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import issues
from mailer.models import IssueStatus
from mailer.proofs import CHROMIUM, CHROMIUM_ARGS
from tests.outbox_fixtures import approved, people, start
from tests.smtp_server import free_port
from tests.web_fixtures import PASSWORDS, Site, build_site, link_in

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def live(
    engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Site, str]]:
    """The whole site served by uvicorn on 127.0.0.1, links in emails pointing at it."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the browser journeys run once, on the embedded default (SQLite)")
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    site = build_site(engine, tmp_path, base_url=root)
    server = uvicorn.Server(
        uvicorn.Config(site.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield site, root
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the browser is told to accept it)."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert, private = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, private


@pytest.fixture
def live_https(engine: Engine, tmp_path: Path) -> Iterator[tuple[Site, str]]:
    """The site over https on 127.0.0.1, as in production: issues take https images only,
    so the media library's images (``{base_url}/media/``) can go into one."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the browser journeys run once, on the embedded default (SQLite)")
    port = free_port()
    root = f"https://127.0.0.1:{port}"
    site = build_site(engine, tmp_path, base_url=root)
    cert, key = _certificate(tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(
            site.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield site, root
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _click(target: Locator) -> None:
    """Click what lies below the editor's preview frames: scrolled to first, as a person
    would. (A click right after Playwright's own scroll can reach a sandboxed frame that
    is drawn in its own process, by the frame's position before the scroll.)"""
    target.scroll_into_view_if_needed()
    target.click()


def _wait_for_mail(site: Site, count: int) -> list[EmailMessage]:
    deadline = time.monotonic() + 20
    while len(found := site.captured()) < count:
        assert time.monotonic() < deadline, f"expected {count} captured messages, got {len(found)}"
        time.sleep(0.1)
    return found


def _login(page: Page, root: str, role: str) -> None:
    page.goto(f"{root}/staff")
    expect(page.get_by_role("heading", name="Staff login")).to_be_visible()
    page.get_by_label("Email address").fill(f"{role}@lepnetwork.example")
    page.get_by_label("Password").fill(PASSWORDS[role])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_a_reader_signs_up_confirms_and_unsubscribes(
    live: tuple[Site, str], browser: Browser
) -> None:
    site, root = live
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(f"{root}/signup")
    expect(
        page.get_by_role("heading", name="Stay updated: sign up for our newsletter")
    ).to_be_visible()
    expect(page.get_by_role("link", name="privacy notice").first).to_be_visible()
    _shot(page, "signup")
    page.get_by_label("Your name").fill("Zoë Partner")
    page.get_by_label("Email address").fill("zoe@partner.example")
    page.get_by_label("Organisation (optional)").fill("Federation of Small Businesses")
    page.get_by_label(re.compile("I would like the LEP Network Newsletter")).check()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    [confirmation] = _wait_for_mail(site, 1)
    page.goto(link_in(confirmation, "/confirm/"))
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="Thank you, Zoë Partner")).to_be_visible()
    _shot(page, "confirmed")

    # A newsletter goes out; its unsubscribe link works in the browser.
    with Session(site.engine) as session:
        start(session, approved(session, "newsletter.md"))
    # Playwright's loop runs in this thread: the sender gets a thread of its own.
    sender = threading.Thread(target=lambda: asyncio.run(site.app.state.ctx.drain_outbox()))
    sender.start()
    sender.join(timeout=60)
    letters = [
        m for m in site.captured() if m["To"].addresses[0].addr_spec == "zoe@partner.example"
    ]
    letter = next(m for m in letters if "Newsletter" in str(m["Subject"]))
    unsubscribe = str(letter["List-Unsubscribe"]).split("<")[1].split(">")[0]
    assert unsubscribe.startswith(f"{root}/u/")
    page.goto(unsubscribe)
    expect(
        page.get_by_role("heading", name="Unsubscribe from the LEP Network Newsletter?")
    ).to_be_visible()
    _shot(page, "unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert page.url == unsubscribe  # no redirect
    page.get_by_role("link", name="Manage your preferences").click()
    expect(page.get_by_label("LEP Network Newsletter")).not_to_be_checked()
    expect(page.get_by_label(re.compile("LEP Network Bulletin"))).to_have_count(0)
    _shot(page, "preferences")


def test_staff_compose_preview_approve_send_and_watch(
    live: tuple[Site, str], browser: Browser
) -> None:
    site, root = live
    with Session(site.engine) as session:
        people(session, 12)
    editor = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(editor, root, "editor")
    _shot(editor, "dashboard")
    editor.get_by_role("button", name="New bulletin").click()
    expect(editor.get_by_role("heading", name=re.compile(r"Bulletin \d{4}.\d{2}"))).to_be_visible()
    editor.get_by_role("link", name="Advanced: edit the file").click()  # the file itself
    text = editor.get_by_label(re.compile("Issue file"))
    content = text.input_value()
    for placeholder, written in {  # the new issue's placeholders, each written over
        ": the headline story": ": Skills England opens its doors",
        "One honest sentence that previews the issue": "Skills England opens; LEP news",
        "Headline of the first item": "Skills England opens its doors",
        "Two or three sentences in **Markdown**.": "Skills England has **opened**.",
        "images.example/photo.jpg": "images.lepnetwork.example/skills.jpg",
        "Describe what the picture shows": "Apprentices in a college workshop",
        "A LEP success story": "D2N2 opens a skills hub",
        "What happened, where, and why.": "The hub opened in Derby on Monday.",
    }.items():
        content = content.replace(placeholder, written)
    text.fill(content)
    editor.get_by_role("button", name="Save and preview").click()
    expect(editor.get_by_text("Saved.")).to_be_visible()
    preview = editor.frame_locator("iframe[title='Preview at 600 pixels']")
    expect(preview.get_by_role("link", name="Skills England opens its doors")).to_be_visible()
    _click(editor.get_by_role("button", name="Send the test"))
    expect(
        editor.get_by_text(re.compile("Test sent to editor@lepnetwork.example: 250"))
    ).to_be_visible()
    editor.get_by_label("375 px (phone)").check()
    phone = editor.frame_locator("iframe[title='Preview at 375 pixels (phone)']")
    expect(phone.get_by_text("Dear Zoë Sample-Ñúñez,")).to_be_visible()
    _shot(editor, "compose")
    issue_url = editor.url
    assert editor.get_by_role("button", name="Approve", exact=True).count() == 0  # editors cannot

    approver = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(approver, root, "approver")
    approver.goto(issue_url)
    _click(approver.get_by_role("button", name="Approve", exact=True))
    expect(approver.get_by_text(re.compile(r"Approved, scheduled for \d{4}/\d{2}"))).to_be_visible()
    _click(approver.get_by_role("link", name="Send now"))
    expect(approver.get_by_role("heading", name=re.compile("now to 12 recipients"))).to_be_visible()
    approver.get_by_role("button", name="Send to 12 now").click()
    expect(approver.get_by_role("heading", name=re.compile("Bulletin .*: sent"))).to_be_visible(
        timeout=30_000
    )
    expect(approver.get_by_role("row", name=re.compile(r"^sent 12$"))).to_be_visible()
    _shot(approver, "send-report")
    approver.goto(f"{root}/staff/mailbox")
    expect(
        approver.get_by_role("link", name=re.compile("Skills England|LEP Network Bulletin")).first
    ).to_be_visible()
    _shot(approver, "mailbox")
    issue_id = int(issue_url.rstrip("/").rsplit("/", 1)[1])
    with Session(site.engine) as session:
        assert issues.get(session, issue_id).status is IssueStatus.SENT
    readers = [
        m for m in site.captured() if re.fullmatch(r"lep\d+\.example", m["To"].addresses[0].domain)
    ]
    assert len(readers) == 12


def test_staff_compose_a_bulletin_in_the_editor_with_a_library_image(
    live_https: tuple[Site, str], browser: Browser, tmp_path: Path
) -> None:
    from PIL import Image

    site, root = live_https
    picture = tmp_path / "workshop.png"
    Image.new("RGB", (640, 320), (29, 107, 55)).save(picture)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    editor = context.new_page()
    _login(editor, root, "editor")

    # The picture goes into the library first, described for those who cannot see it.
    editor.get_by_role("link", name="Media", exact=True).click()
    editor.get_by_label(re.compile("^Image")).set_input_files(picture)
    editor.get_by_label(re.compile("^Alt text")).fill("Apprentices in a college workshop")
    editor.get_by_role("button", name="Upload").click()
    expect(editor.get_by_text("Added workshop.png (640×320) to the library.")).to_be_visible()  # noqa: RUF001

    # A new bulletin, written from scratch in the form: its second section replaced by a
    # new one; typing is kept across the plain posts that add and remove blocks.
    editor.goto(f"{root}/staff")
    editor.get_by_role("button", name="New bulletin").click()
    expect(editor.get_by_role("heading", name=re.compile(r"Bulletin \d{4}.\d{2}"))).to_be_visible()
    editor.get_by_label("Subject line").fill("Skills England opens its doors; LEP news")
    editor.get_by_label(re.compile("^Preheader")).fill("The skills hub opens, and news from D2N2")
    editor.get_by_role("button", name="Remove section 2").click()
    editor.get_by_role("button", name="Add a section").click()
    expect(editor.get_by_label("Subject line")).to_have_value(
        "Skills England opens its doors; LEP news"
    )
    first, second = editor.locator("#s0"), editor.locator("#s1")
    first.get_by_label("Section heading").fill("Updates from government")
    first.get_by_label("Headline", exact=True).fill("Skills England opens its doors")
    first.get_by_label(re.compile("^Link")).fill("https://www.gov.uk/skills-england")
    first.get_by_label("Image from the library").select_option(index=1)
    first.get_by_label("Text (Markdown)").fill("Skills England has **opened** in Sheffield.")
    second.get_by_label("Section heading").fill("LEP news")
    second.get_by_label("Headline", exact=True).fill("D2N2 opens a skills hub")
    second.get_by_label("Text (Markdown)").fill("The hub opened in Derby on Monday.")

    # With JavaScript the draft is autosaved when typing stops, and the preview shows it.
    expect(editor.get_by_text(re.compile("Draft autosaved at"))).to_be_visible(timeout=15_000)
    preview = editor.frame_locator("iframe[title='Preview at 600 pixels']")
    expect(preview.get_by_text("D2N2 opens a skills hub")).to_be_visible()
    expect(first.get_by_label(re.compile("^Image address"))).to_have_value(
        re.compile(rf"^{re.escape(root)}/media/[0-9a-f]{{64}}\.png$")
    )

    editor.get_by_role("button", name="Save and preview").click()
    expect(editor.get_by_text("Saved.")).to_be_visible()
    expect(preview.get_by_role("link", name="Skills England opens its doors")).to_be_visible()
    image = preview.get_by_role("img", name="Apprentices in a college workshop")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") == 640  # fetched from /media/ over https
    editor.get_by_label("375 px (phone)").check()
    phone = editor.frame_locator("iframe[title='Preview at 375 pixels (phone)']")
    expect(phone.get_by_text("D2N2 opens a skills hub")).to_be_visible()
    editor.get_by_label("600 px (desktop)").check()
    _shot(editor, "editor")

    issue_id = int(editor.url.split("#")[0].rstrip("/").rsplit("/", 1)[1])
    with Session(site.engine) as session:
        saved = issues.document(session, issues.get(session, issue_id))
    assert [s.heading for s in saved.sections] == ["Updates from government", "LEP news"]
    picked = saved.sections[0].items[0].image
    assert picked is not None
    assert (picked.alt, picked.width, picked.height) == (
        "Apprentices in a college workshop",
        640,
        320,
    )
    context.close()


def test_mailer_serve_answers_and_stops_on_ctrl_c(project: Path) -> None:
    # The README's way: `mailer serve` in the project folder, then Ctrl-C.
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.test_cli import run

    assert run("init", "--demo").exit_code == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--port", str(port)],
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/staff/login", timeout=2
                ) as answer:
                    assert answer.status == 200
                    assert b"Staff login" in answer.read()
                    break
            except OSError:
                assert time.monotonic() < deadline, "mailer serve did not answer"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/signup", timeout=5) as answer:
            assert b"Stay updated" in answer.read()
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert f"Console: http://127.0.0.1:{port}/staff" in output
    assert "daemon leads" in output
