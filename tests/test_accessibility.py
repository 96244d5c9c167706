"""Every page, public and console, in Chromium at 1280 and 375 px: axe-core finds no
serious or critical WCAG 2.2 A/AA violation, and nothing scrolls sideways on a phone."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import Browser, Page
from sqlmodel import Session

from mailer.models import Contribution, ContributionKind
from mailer.web.staff import GUARDED_ROUTERS
from tests.outbox_fixtures import approved, people
from tests.test_browser import ARTIFACTS, _login, browser, live
from tests.web_fixtures import Site

AXE = Path(__file__).resolve().parent.parent / ".venv/axe/node_modules/axe-core/axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
WIDTHS = (1280, 375)
__all__ = ["browser", "live"]  # fixtures used here


def _console_pages(issue_id: int, contact_id: int) -> list[str]:
    """Every console page a GET reaches: from the routers, ids filled in."""
    ids = {
        "issue_id": issue_id,
        "contact_id": contact_id,
        "message_id": 1,
        "session_id": 1,
        "contribution_id": 1,
    }
    pages = []
    for router in GUARDED_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            if "GET" not in (route.methods or ()) or route.path.endswith(
                (".csv", ".json", ".ics", ".pdf")
            ):
                continue
            if route.path.endswith((".html", "/html")):
                continue  # an issue's own HTML, as sent: judged as an email, not a page
            path = "/staff" + route.path
            for name, value in ids.items():
                path = path.replace("{" + name + "}", str(value))
            if "{" not in path:
                pages.append(path)
    return sorted(set(pages))


def _violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS
    )
    found = []
    for violation in result["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found


@pytest.fixture
def pages(live: tuple[Site, str]) -> tuple[Site, str, list[str], list[str]]:
    site, root = live
    with Session(site.engine, expire_on_commit=False) as session:
        contact = people(session, 2)[0]
        issue = approved(session)
        assert contact.id is not None and issue.id is not None
        session.add(  # the first contribution, as its console page shows it
            Contribution(
                contact_id=contact.id,
                organisation_id=contact.organisation_id,
                kind=ContributionKind.EVENT,
                headline="Net zero workshop for LEP officers",
                body="A morning of **practical** examples.",
                event_on=date(2031, 3, 4),
                event_place="Derby",
            )
        )
        session.commit()
    token = site.app.state.ctx.signer.recipient(contact.id, issue.id)
    public = [
        "/",
        "/signup",
        "/privacy",
        "/archive",
        "/staff/login",
        f"/u/{token}",
        f"/p/{token}",
        f"/contribute/{token}",
    ]
    return site, root, public, _console_pages(issue.id, contact.id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_every_page_passes_axe_and_fits_a_phone(
    pages: tuple[Site, str, list[str], list[str]], browser: Browser
) -> None:
    assert AXE.exists(), "axe-core is installed by `make test` (npm)"
    _, root, public, console = pages
    assert len(console) >= 8
    problems: dict[str, list[str]] = {}
    for width in WIDTHS:
        # The injected axe script is not the site's own: the policy is set aside for it.
        context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        page = context.new_page()
        for path in public:
            page.goto(root + path)
            problems[f"{path} @{width}"] = _check(page, width)
        _login(page, root, "admin")
        for path in console:
            page.goto(root + path)
            problems[f"{path} @{width}"] = _check(page, width)
            if width == 375:
                ARTIFACTS.mkdir(exist_ok=True)
                name = path.strip("/").replace("/", "-") or "home"
                page.screenshot(path=str(ARTIFACTS / f"a11y-{name}-375.png"), full_page=True)
        context.close()
    failing = {where: found for where, found in problems.items() if found}
    assert not failing, "\n".join(f"{w}: {f}" for w, f in failing.items())


def _check(page: Page, width: int) -> list[str]:
    found = _violations(page)
    if width == 375:
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        if wide > page.evaluate("window.innerWidth"):
            found.append(f"scrolls sideways: {wide} px wide")
    return found
