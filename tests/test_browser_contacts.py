"""A member of staff in Debian's Chromium adds a contact, corrects its address, and sends a
test of the bulletin to it as a seed address, greeted by name. Screenshots in
tests/artifacts/."""

from __future__ import annotations

import dataclasses
import re
import time

from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from mailer.settings import ProofSettings
from tests.outbox_fixtures import approved
from tests.test_browser import _login, _shot, browser, live
from tests.web_fixtures import Site

__all__ = ["browser", "live"]  # the fixtures this journey runs on

SEED = "amira.khan@d2n2lep.org"


def _no_sideways_scroll(page: Page) -> None:
    """Nothing in the page's content reaches beyond a phone's width (the shared header's
    menu is the layout's, checked with the layout)."""
    wide = page.evaluate(
        """() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
            .map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 30))"""
    )
    assert wide == [], f"{page.url} is wider than the phone: {wide}"


def test_staff_add_and_edit_a_contact_then_send_a_test_to_it_as_a_seed(
    live: tuple[Site, str], browser: Browser
) -> None:
    site, root = live
    ctx = site.app.state.ctx
    settings = ctx.config.settings.model_copy(
        update={"proofs": ProofSettings(seed_addresses=(SEED,))}
    )
    ctx.config = dataclasses.replace(ctx.config, settings=settings)
    with Session(site.engine) as session:
        issue_id = approved(session).id
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, root, "editor")
    page.get_by_role("link", name="Contacts", exact=True).click()
    page.get_by_role("link", name="Add a contact").click()
    page.get_by_label("Email address").fill("amira.khan@d2n2lep.example")
    page.get_by_label("Name", exact=True).fill("Amira Khan")
    page.get_by_label("Organisation").select_option(
        label="Derby, Derbyshire, Nottingham and Nottinghamshire LEP (lep)"
    )
    page.get_by_label("Role").select_option(label="Communications lead")
    _shot(page, "contact-add")
    page.get_by_role("button", name="Add the contact").click()
    expect(page.get_by_role("heading", name="Amira Khan")).to_be_visible()
    expect(page.get_by_text("receives bulletin, newsletter")).to_be_visible()

    page.get_by_label("Email address").fill(SEED)  # the right address, corrected
    page.get_by_role("button", name="Save the details").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_text(SEED).first).to_be_visible()
    _shot(page, "contact-edit")

    phone = browser.new_page(viewport={"width": 375, "height": 800})
    _login(phone, root, "editor")
    for path in ("/staff/contacts/import", "/staff/contacts/new", "/staff/contacts?q=amira"):
        phone.goto(root + path)
        _no_sideways_scroll(phone)
    _shot(phone, "contacts-phone")

    page.goto(f"{root}/staff/issues/{issue_id}")
    page.get_by_label("editor <editor@lepnetwork.example>").uncheck()
    page.get_by_label(f"Amira Khan <{SEED}>").check()
    page.get_by_role("button", name="Send the test").click()
    expect(page.get_by_text(re.compile(f"Test sent to {re.escape(SEED)}: 250"))).to_be_visible()
    _shot(page, "test-to-seed")
    deadline = time.monotonic() + 10
    while not (letters := site.captured()):
        assert time.monotonic() < deadline, "the test was not captured"
        time.sleep(0.1)
    [letter] = letters
    assert letter["To"].addresses[0].addr_spec == SEED
    body = letter.get_body(("plain",))
    assert body is not None and "Dear Amira Khan," in body.get_content()
