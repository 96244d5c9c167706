"""Lint: what blocks approval and what is only a warning."""

from __future__ import annotations

import dataclasses

from mailer.content import ImageContent, ItemContent, SectionContent
from mailer.lint import Severity, errors, lint
from mailer.models import Publication
from mailer.rendering import Renderer
from mailer.settings import WebSettings
from tests.conftest import ROOT
from tests.rendering_fixtures import FIXED_SLOTS, NETWORK, ZONE, content, definition, renderer


def _codes(findings: list) -> dict[str, Severity]:  # type: ignore[type-arg]
    return {f.code: f.severity for f in findings}


def test_the_realistic_issues_are_clean() -> None:
    for publication in Publication:
        issue = content(publication)
        rendered = renderer().render(issue, definition(publication), FIXED_SLOTS)
        assert lint(issue, rendered) == []


def test_problems_are_found_and_sorted_errors_first() -> None:
    base = content(Publication.BULLETIN)
    items = (
        ItemContent("No alt", "Body", image=ImageContent("https://i.example/a.png", "", 600, 300)),
        ItemContent(
            "No size", "Body", image=ImageContent("https://i.example/b.png", "B", None, None)
        ),
        ItemContent(
            "Plain http", "See [this](http://insecure.example/page).", link="http://x.example"
        ),
        ItemContent("Nothing at all"),
    )
    issue = dataclasses.replace(
        base,
        subject="Re: " + "a very long subject line " * 4,
        preheader="p" * 151,
        sections=(SectionContent("Items", items), SectionContent("Empty section")),
    )
    findings = lint(issue, renderer().render(issue, definition(Publication.BULLETIN), FIXED_SLOTS))
    codes = _codes(findings)
    assert codes == {
        "image-alt": Severity.ERROR,
        "image-size": Severity.ERROR,
        "empty-section": Severity.ERROR,
        "subject-reply": Severity.ERROR,
        "link-https": Severity.WARNING,
        "empty-item": Severity.WARNING,
        "subject-length": Severity.WARNING,
        "preheader-length": Severity.WARNING,
    }
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=lambda s: s is not Severity.ERROR)
    assert len(errors(findings)) == 4


def test_a_clipped_html_part_is_an_error() -> None:
    base = content(Publication.BULLETIN)
    long_item = ItemContent("Long", "word " * 25_000)
    issue = dataclasses.replace(base, sections=(SectionContent("Long", (long_item,)),))
    findings = lint(issue, renderer().render(issue, definition(Publication.BULLETIN), FIXED_SLOTS))
    assert "html-size" in _codes(findings)


def test_missing_unsubscribe_links_and_an_http_site_are_reported() -> None:
    issue = content(Publication.BULLETIN)
    rendered = renderer().render(issue, definition(Publication.BULLETIN), FIXED_SLOTS)
    stripped = dataclasses.replace(
        rendered,
        html=rendered.html.replace(rendered.links["unsubscribe"], "https://elsewhere.example"),
        text=rendered.text.replace(rendered.links["unsubscribe"], ""),
    )
    unsubscribe = [f for f in lint(issue, stripped) if f.code == "unsubscribe"]
    assert [f.message for f in unsubscribe] == [
        "the HTML part has no unsubscribe link",
        "the text part has no unsubscribe link",
    ]
    http_site = Renderer(
        ROOT / "templates", NETWORK, WebSettings(base_url="http://127.0.0.1:8000"), ZONE
    )
    findings = lint(issue, http_site.render(issue, definition(Publication.BULLETIN), FIXED_SLOTS))
    assert _codes(findings) == {"site-https": Severity.WARNING}
