"""The calendar, events and accounts pages in Debian's Chromium, as staff use them: an
approver moves a slot and keeps the events diary, an admin adds an account. Screenshots
go to tests/artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from mailer import calendar, clock
from mailer.models import Publication
from tests.test_browser import _login, _shot, browser, live
from tests.web_fixtures import Site

__all__ = ["browser", "live"]  # fixtures used here
LONDON = ZoneInfo("Europe/London")


def _fits(page: Page) -> None:
    """Nothing in the page's content is wider than the window (no sideways scrolling)."""
    wide = page.evaluate("() => document.querySelector('main').scrollWidth")
    window = page.evaluate("() => window.innerWidth")
    assert wide <= window, f"{page.url}: the content is {wide} px wide in {window} px"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_an_approver_moves_a_slot_and_keeps_the_diary_and_an_admin_adds_an_account(
    live: tuple[Site, str], browser: Browser
) -> None:
    site, root = live
    year = clock.now().astimezone(LONDON).year + 1
    with Session(site.engine) as session:
        views = calendar.year_view(session, year, site.config.settings)
        session.commit()
    first = next(v for v in views if v.publication is Publication.BULLETIN)
    moved_to = (first.send_at.astimezone(LONDON) + timedelta(days=1)).replace(hour=11, minute=0)

    approver = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(approver, root, "approver")
    approver.get_by_role("link", name="Calendar", exact=True).click()
    approver.get_by_label("Year").select_option(str(year))
    approver.get_by_role("button", name="Show").click()
    expect(approver.get_by_role("heading", name=f"Editorial calendar {year}")).to_be_visible()
    row = approver.locator(f"#slot-{first.id}")
    row.locator("summary").click()
    row.get_by_label("New time").fill(moved_to.strftime("%Y-%m-%dT%H:%M"))
    row.get_by_role("button", name="Move").click()
    expect(approver.get_by_text(re.compile(rf"Slot {first.id} .* now goes out"))).to_be_visible()
    expect(approver.locator(f"#slot-{first.id}")).to_contain_text(moved_to.strftime("%a %d %b"))
    _shot(approver, "calendar")
    approver.set_viewport_size({"width": 375, "height": 800})
    _fits(approver)
    _shot(approver, "calendar-phone")
    approver.set_viewport_size({"width": 1280, "height": 900})

    approver.get_by_role("link", name="Events", exact=True).click()
    approver.get_by_label("Date").fill(f"{year}-03-10")
    approver.get_by_label("Title").fill("LEP Network conference")
    approver.get_by_label("Where").fill("London")
    approver.get_by_label("Link (https)").fill("http://conference.example")
    approver.get_by_role("button", name="Add").click()
    expect(approver.get_by_text("link: expected an https address")).to_be_visible()
    expect(approver.get_by_label("Title")).to_have_value("LEP Network conference")
    approver.get_by_label("Link (https)").fill("https://conference.example")
    approver.get_by_role("button", name="Add").click()
    expect(approver.get_by_text("Added the event LEP Network conference.")).to_be_visible()
    approver.get_by_role("link", name="Edit or delete LEP Network conference").click()
    approver.get_by_label("Title").fill("LEP Network conference 2027")
    approver.get_by_role("button", name="Save").click()
    expect(approver.get_by_text("Saved the event LEP Network conference 2027.")).to_be_visible()
    _shot(approver, "events")
    approver.get_by_role("link", name="Edit or delete LEP Network conference 2027").click()
    _shot(approver, "event-edit")
    approver.get_by_role("button", name="Delete the event").click()
    expect(
        approver.get_by_text(re.compile("Deleted the event LEP Network conference 2027"))
    ).to_be_visible()
    expect(approver.get_by_role("cell", name="No events.")).to_be_visible()
    assert approver.get_by_role("link", name="Accounts", exact=True).count() == 0  # admins only

    admin = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(admin, root, "admin")
    admin.get_by_role("link", name="Accounts", exact=True).click()
    expect(admin.get_by_role("heading", name="Staff accounts")).to_be_visible()
    admin.get_by_label("Email address").fill("jo@lepnetwork.example")
    admin.get_by_label("Role", exact=True).select_option("approver")
    admin.get_by_role("button", name="Add the account").click()
    expect(
        admin.get_by_role("heading", name="Added jo@lepnetwork.example (approver).")
    ).to_be_visible()
    expect(admin.locator(".password")).to_have_text(re.compile(r"^\S{12,}$"))
    _shot(admin, "accounts")
    admin.set_viewport_size({"width": 375, "height": 800})
    _fits(admin)
    _shot(admin, "accounts-phone")
