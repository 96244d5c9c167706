"""A LEP's contribution end to end, over real HTTP and in Debian's Chromium: a bulletin goes
out through the capture transport, a reader follows its footer's link and sends news with
an image and an event, an editor accepts both in the console, and the next issue's
rendering carries the headline and its diary the event. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import asyncio
import io
import re
import threading
from datetime import UTC, datetime

import httpx2 as httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, expect
from sqlmodel import Session, col, select

from mailer import clock, editorial, publications
from mailer.models import Contribution, Publication
from tests.outbox_fixtures import APPROVER, drafted, people, start
from tests.test_browser import _login, _shot, browser, live_https
from tests.web_fixtures import Site, link_in

__all__ = ["browser", "live_https"]  # fixtures used here
MID_JANUARY = datetime(2027, 1, 14, 9, 0, tzinfo=UTC)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 400), (11, 61, 92)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_a_reader_contributes_from_the_bulletin_and_an_editor_accepts_it_in_chromium(
    live_https: tuple[Site, str], browser: Browser
) -> None:
    site, root = live_https
    with clock.frozen(MID_JANUARY):
        with Session(site.engine) as session:
            people(session, 2)
            issue = drafted(session)  # approved with the site's own renderer: its links
            assert issue.id is not None
            editorial.approve(
                session,
                issue.id,
                approver=APPROVER,
                renderer=site.app.state.ctx.renderer,
                definition=publications.load(site.config.lists_dir, Publication.BULLETIN),
                settings=site.config.settings,
            )
            session.commit()
            start(session, issue)
        # Playwright's loop runs in this thread: the sender runs in its own.
        sending = threading.Thread(target=asyncio.run, args=(site.app.state.ctx.drain_outbox(),))
        sending.start()
        sending.join(timeout=120)
        mail = [m for m in site.captured() if "reader0@" in str(m["To"])]
        link = link_in(mail[0], "/contribute/")
        assert link.startswith(f"{root}/contribute/")
        with httpx.Client(verify=False, timeout=30) as reader:
            news = reader.post(
                link,
                data={
                    "kind": "best_practice",
                    "headline": "How D2N2 halved its grant paperwork",
                    "text": "One form instead of four, and **answers in a week**.",
                    "link": "https://d2n2lep.example/grants",
                    "image_alt": "A single grant form on a desk",
                },
                files={"image": ("form.png", _png(), "image/png")},
            )
            assert news.status_code == 200 and "Thank you" in news.text
            event = reader.post(
                link,
                data={
                    "kind": "event",
                    "headline": "Net zero workshop for LEP officers",
                    "text": "A morning of practical examples.",
                    "event_date": "2027-02-09",
                    "event_time": "10:00",
                    "event_place": "Derby Council House",
                },
            )
            assert event.status_code == 200
        with Session(site.engine) as session:
            rows = session.exec(select(Contribution).order_by(col(Contribution.id))).all()
        assert [r.headline for r in rows] == [
            "How D2N2 halved its grant paperwork",
            "Net zero workshop for LEP officers",
        ]

        context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 390, "height": 844}
        )
        page = context.new_page()
        _login(page, root, "editor")
        page.get_by_role("link", name="Contributions", exact=True).click()
        expect(page.get_by_role("heading", name="Contributions from LEPs")).to_be_visible()
        expect(page.get_by_text("before the deadline").first).to_be_visible()
        _shot(page, "contributions-queue-390")
        page.get_by_role("link", name="How D2N2 halved its grant paperwork").click()
        expect(page.locator(".preview-text")).to_contain_text("One form instead of four")
        expect(page.get_by_role("img", name="A single grant form on a desk")).to_be_visible()
        _shot(page, "contribution-390")
        page.get_by_role("button", name="Accept").click()
        expect(page.locator("p.flash")).to_contain_text("Accepted: placed in 'Best practice'")
        issue_id = int(re.search(r"/staff/issues/(\d+)", page.url).group(1))  # type: ignore[union-attr]
        expect(page.get_by_role("link", name=f"contribution {rows[0].id}")).to_be_visible()

        page.goto(f"{root}/staff/contributions/{rows[1].id}")
        expect(page.get_by_text("It goes into the events diary")).to_be_visible()
        page.get_by_role("button", name="Accept").click()
        expect(page.locator("p.flash")).to_contain_text("added to the events diary")

        page.goto(f"{root}/staff/issues/{issue_id}/preview.html")
        html = page.content()
        assert "How D2N2 halved its grant paperwork" in html
        assert "Net zero workshop for LEP officers" in html  # the diary of the next issue
        assert f"{root}/media/{rows[0].image_name}" in html
        page.goto(f"{root}/staff/contributions")
        expect(page.get_by_text("accepted").first).to_be_visible()
        context.close()
