"""Staff-written Markdown: hostile input neutralised, plain text readable."""

from __future__ import annotations

import re

import pytest

from mailer.markup import single_line, to_html, to_text

# Payloads from the usual XSS cheat sheets, written as staff might paste them into Markdown.
XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '[click](https://ok.example "title" onclick="alert(1)")',
    "<iframe src=https://evil.example></iframe>",
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<object data=javascript:alert(1)>",
    "<form action=https://evil.example><input name=p></form>",
    "<meta http-equiv=refresh content=0;url=https://evil.example>",
    "<base href=https://evil.example/>",
    "[x](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;:alert(1))",
    "[x](java\tscript:alert(1))",
    '<a href="&#x6A;avascript:alert(1)">x</a>',
    "<details open ontoggle=alert(1)>",
    "<body onload=alert(1)>",
    "<math><mi xlink:href=javascript:alert(1)>x</mi></math>",
    "[x](file:///etc/passwd)",
    "<!--<script>alert(1)</script>-->",
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    "<<script>alert(1)//<</script>",
]
_DANGER = re.compile(
    r"<\s*(script|iframe|object|embed|form|input|meta|base|style|svg|math|body|details)\b"
    r"|\bon[a-z]+\s*=|javascript:|vbscript:|data:|file:",
    re.IGNORECASE,
)


@pytest.mark.parametrize("payload", XSS)
def test_hostile_markdown_is_neutralised(payload: str) -> None:
    # Whatever staff paste, the HTML keeps no active content and no dangerous link.
    html = to_html(f"Before\n\n{payload}\n\nAfter")
    live = re.sub(r"&[a-z]+;|&#\d+;", "", html)  # escaped text is harmless
    tags = re.findall(r"<[^>]+>", live)
    assert not [t for t in tags if _DANGER.search(t)], html
    for tag in tags:
        for href in re.findall(r'(?:href|src)="([^"]*)"', tag):
            assert href.startswith(("https://", "http://", "mailto:")), html


def test_safe_markdown_keeps_its_meaning() -> None:
    html = to_html(
        "Some **bold** and *italic* text with [a link](https://www.gov.uk) and "
        "[mail](mailto:info@lepnetwork.example).\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    assert "<strong>bold</strong>" in html
    assert "<em>italic</em>" in html
    assert '<a href="https://www.gov.uk">a link</a>' in html
    assert '<a href="mailto:info@lepnetwork.example">mail</a>' in html
    assert "<li>one</li>" in html
    assert "<td>2</td>" in html


def test_plain_text_writes_links_out_and_wraps() -> None:
    text = to_text(
        "A paragraph that is long enough to need wrapping because it goes on and on past the "
        "width of a text email, with [a link](https://www.gov.uk/guidance).\n\n"
        "- first\n- second\n\n1. one\n2. two\n\n> quoted\n\n<b>not html</b>"
    )
    lines = text.splitlines()
    assert all(len(line) <= 76 for line in lines if "https://" not in line)
    assert "a link <https://www.gov.uk/guidance>" in " ".join(lines)
    assert "- first" in lines
    assert "2. two" in lines
    assert "> quoted" in lines
    assert "<b>not html</b>" in text


@pytest.mark.parametrize("value", ["Subject\r\nBcc: x@example.org", "a\nb", "tab\x0bnull", "x\x00"])
def test_a_line_break_in_a_one_line_field_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="subject: a line break or control character"):
        single_line(value, "subject")


def test_one_line_fields_are_tidied_and_bounded() -> None:
    assert single_line("  Skills   news ", "subject") == "Skills news"
    with pytest.raises(ValueError, match="subject: must not be empty"):
        single_line("  ", "subject")
    with pytest.raises(ValueError, match="longer than 10"):
        single_line("x" * 11, "subject", max_length=10)
