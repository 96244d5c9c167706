"""Rendering once per issue: golden output, accessible 600px layout, clear template errors."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from mailer.models import Publication
from mailer.rendering import CONTRAST_PAIRS, PALETTE, RenderError, inline_css
from tests.conftest import ROOT
from tests.rendering_fixtures import FIXED_SLOTS, GOLDEN, content, definition, renderer

UPDATE = os.environ.get("MAILER_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("publication", list(Publication))
def test_the_rendering_matches_the_golden_files(publication: Publication) -> None:
    # A change to templates or rendering shows up here; after checking the new output,
    # refresh with: MAILER_UPDATE_GOLDEN=1 pytest tests/test_rendering.py
    rendered = renderer().render(content(publication), definition(publication), FIXED_SLOTS)
    for suffix, produced in (("html", rendered.html), ("txt", rendered.text)):
        golden = GOLDEN / f"{publication.value}.{suffix}"
        if UPDATE:
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(produced, encoding="utf-8")
        assert produced == golden.read_text(encoding="utf-8"), f"{golden} differs"


@pytest.mark.parametrize("publication", list(Publication))
def test_the_html_follows_email_practice(publication: Publication) -> None:
    html = renderer().render(content(publication), definition(publication), FIXED_SLOTS).html
    assert html.startswith('<!doctype html>\n<html lang="en-GB"')
    assert '<meta charset="utf-8">' in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert re.search(r"<title>[^<]+</title>", html)
    assert "@media (prefers-color-scheme: dark)" in html
    assert "@media screen and (max-width: 620px)" in html
    tables = re.findall(r"<table[^>]*>", html)
    assert tables
    assert all('role="presentation"' in t for t in tables)
    assert 'width="600"' in html
    images = re.findall(r"<img[^>]*>", html)
    assert images
    for image in images:
        assert re.search(r'alt="[^"]+"', image), image
        assert re.search(r'width="\d+"', image), image
        assert re.search(r'height="\d+"', image), image
    # The preheader is the only hidden text.
    hidden = re.findall(r"<[^>]+display: ?none[^>]*>", html)
    assert len(hidden) == 1
    assert content(publication).preheader in html.split(hidden[0])[1].split("</div>")[0]
    assert len(html.encode()) < 100 * 1024
    assert "<script" not in html


@pytest.mark.parametrize("publication", list(Publication))
def test_both_parts_carry_the_footer_and_the_same_links(publication: Publication) -> None:
    rendered = renderer().render(content(publication), definition(publication), FIXED_SLOTS)
    footer = [
        "LEP Network",
        "1 Example Street, London, SW1A 0AA",
        definition(publication).reason.split()[0],
        "https://lepnetwork.example/privacy",
        f"https://lepnetwork.example/u/{FIXED_SLOTS.token}",
        f"https://lepnetwork.example/p/{FIXED_SLOTS.token}",
        f"https://lepnetwork.example/v/{FIXED_SLOTS.token}",
    ]
    for part in (rendered.html, rendered.text):
        for expected in footer:
            assert expected in part
    text_links = set(re.findall(r"https?://[^\s>]+", rendered.text))
    html_links = {h for h in re.findall(r'href="(https?://[^"]+)"', rendered.html)}
    assert html_links <= text_links, html_links - text_links
    assert FIXED_SLOTS.name in rendered.text
    assert FIXED_SLOTS.name in rendered.html


def test_the_sponsor_slot_and_events_appear_where_they_belong() -> None:
    newsletter = renderer().render(
        content(Publication.NEWSLETTER), definition(Publication.NEWSLETTER), FIXED_SLOTS
    )
    assert "Sponsored by" in newsletter.html
    assert "SPONSORED BY EXAMPLE INFRASTRUCTURE PARTNERS" in newsletter.text
    assert "Events diary" in newsletter.html
    assert "Wed 10 Mar: LEP Network spring conference, QEII Centre, London" in newsletter.text
    bulletin = renderer().render(
        content(Publication.BULLETIN), definition(Publication.BULLETIN), FIXED_SLOTS
    )
    assert "Sponsored by" not in bulletin.html


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("foreground", "background"), CONTRAST_PAIRS)
def test_every_colour_pair_meets_wcag_aa(scheme: str, foreground: str, background: str) -> None:
    fg, bg = (_luminance(PALETTE[scheme][name]) for name in (foreground, background))
    ratio = (max(fg, bg) + 0.05) / (min(fg, bg) + 0.05)
    assert ratio >= 4.5, f"{scheme} {foreground} on {background}: {ratio:.2f}"


def _broken_templates(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    folder = _broken_templates(
        tmp_path, "partials/footer.html", "<tr>\n<td>\n{% if links.unsubscribe %}\n</td>\n"
    )
    with pytest.raises(RenderError, match=r"partials/footer.html:\d+: .*endif"):
        renderer(folder).render(
            content(Publication.BULLETIN), definition(Publication.BULLETIN), FIXED_SLOTS
        )


def test_a_missing_value_fails_the_render_naming_template_and_line(tmp_path: Path) -> None:
    folder = _broken_templates(
        tmp_path, "partials/footer.txt", "--\n{{ publication.reason }}\n{{ network.fax_number }}\n"
    )
    with pytest.raises(RenderError, match=r"partials/footer.txt:3: .*fax_number"):
        renderer(folder).render(
            content(Publication.BULLETIN), definition(Publication.BULLETIN), FIXED_SLOTS
        )


def test_a_missing_template_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    (folder / "newsletter.txt").unlink()
    with pytest.raises(RenderError, match=r"template not found: newsletter\.txt"):
        renderer(folder).render(
            content(Publication.NEWSLETTER), definition(Publication.NEWSLETTER), FIXED_SLOTS
        )


def test_staff_text_is_escaped_in_titles_and_headings() -> None:
    base = content(Publication.BULLETIN)
    hostile = (
        base.sections[0]
        .items[0]
        .__class__(title='<img src=x onerror="alert(1)">', body="<script>alert(1)</script>")
    )
    section = base.sections[0].__class__('Heading & "quotes" <b>', (hostile,))
    rendered = renderer().render(
        base.__class__(**{**base.__dict__, "sections": (section,)}),
        definition(Publication.BULLETIN),
        FIXED_SLOTS,
    )
    assert "<img src=x" not in rendered.html
    assert "&lt;img src=x onerror=" in rendered.html
    assert "<script>" not in rendered.html
    assert "Heading &amp;" in rendered.html


def test_inlining_keeps_media_queries_and_restores_the_doctype() -> None:
    html = inline_css(
        "<!doctype html><html><head><style>p{color:#111111}"
        "@media (prefers-color-scheme: dark){p{color:#eeeeee !important}}</style></head>"
        "<body><p>x</p></body></html>"
    )
    assert html.startswith("<!doctype html>\n")
    assert '<p style="color:#111">x</p>' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "!important" in html
