"""Staff-written Markdown turned into sanitised HTML and readable plain text.

Markdown is parsed by markdown-it-py with raw HTML switched off, then the HTML is
cleaned by nh3 (ammonia): no scripts, styles or event handlers, and links only to
http, https and mailto addresses. The plain text comes from the same parse.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Sequence

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h4",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}
WIDTH = 76

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")

_parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_parser.enable("table").enable("strikethrough")


def single_line(value: str, field: str, *, max_length: int = 300, required: bool = True) -> str:
    """A one-line text (subject, heading, title): whitespace collapsed, no line breaks.

    :raises ValueError: the value holds a CR, LF or control character, is empty when
        required, or is too long; the message names ``field``.
    """
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in value):
        raise ValueError(f"{field}: a line break or control character is not allowed")
    text = " ".join(value.split())
    if required and not text:
        raise ValueError(f"{field}: must not be empty")
    if len(text) > max_length:
        raise ValueError(f"{field}: longer than {max_length} characters")
    return text


def item_body(body: str) -> str:
    """An item's Markdown text as an issue file can hold it (line breaks made \\n, blank
    lines around it dropped): no line may start a new section or item (## or ###, outside
    a code block), and every code block is closed.

    :raises ValueError: the message names the line.
    """
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    in_fence = False
    for number, line in enumerate(body.split("\n"), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith(("## ", "### ")):
            raise ValueError(
                f"Text, line {number}: a line starting with ## or ### would begin a new "
                "section or item; use **bold** text for a heading inside an item"
            )
    if in_fence:
        raise ValueError("Text: a code block (```) is never closed")
    return body.strip("\n")


def clean_html(html: str) -> str:
    """Keep only harmless markup: the tags and attributes above, http(s) and mailto links."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )


def to_html(markdown: str) -> str:
    """Markdown as sanitised HTML (block level: paragraphs, lists, tables)."""
    return clean_html(_parser.render(markdown))


def to_text(markdown: str, width: int = WIDTH) -> str:
    """Markdown as plain text: links written out, lists bulleted, lines wrapped."""
    return _TextRenderer(width).render(_parser.parse(markdown)).strip("\n")


def _inline_text(children: Sequence[Token]) -> str:
    parts: list[str] = []
    hrefs: list[str] = []
    starts: list[int] = []
    for token in children:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type == "softbreak":
            parts.append(" ")
        elif token.type == "hardbreak":
            parts.append("\n")
        elif token.type == "image":
            alt = "".join(child.content for child in token.children or [])
            parts.append(f"[{alt or 'image'}]")
        elif token.type == "link_open":
            hrefs.append(str(token.attrs.get("href", "")))
            starts.append(len(parts))
        elif token.type == "link_close" and hrefs:
            href = hrefs.pop()
            label = "".join(parts[starts.pop() :]).strip()
            if href and label not in (href, href.removeprefix("mailto:")):
                parts.append(f" <{href}>")
    return "".join(parts)


class _TextRenderer:
    """Walks markdown-it's tokens and writes plain text."""

    def __init__(self, width: int) -> None:
        self.width = width

    def render(self, tokens: Sequence[Token]) -> str:
        out: list[str] = []
        prefixes: list[str] = []
        counters: list[int | None] = []
        pending_bullet: str | None = None
        row: list[str] = []
        in_cell = False
        for token in tokens:
            kind = token.type
            if kind in ("th_open", "td_open"):
                in_cell = True
            elif kind in ("th_close", "td_close"):
                in_cell = False
            elif kind == "bullet_list_open":
                counters.append(None)
            elif kind == "ordered_list_open":
                counters.append(int(str(token.attrs.get("start", 1))))
            elif kind in ("bullet_list_close", "ordered_list_close"):
                counters.pop()
                if not counters:
                    out.append("")
            elif kind == "list_item_open":
                counter = counters[-1] if counters else None
                if counter is None:
                    pending_bullet = "- "
                else:
                    pending_bullet = f"{counter}. "
                    counters[-1] = counter + 1
                prefixes.append(" " * len(pending_bullet))
            elif kind == "list_item_close":
                prefixes.pop()
            elif kind == "blockquote_open":
                prefixes.append("> ")
            elif kind == "blockquote_close":
                prefixes.pop()
            elif kind == "inline":
                text = _inline_text(token.children or [])
                if in_cell:
                    row.append(text)
                    continue
                out.append(self._block(text, prefixes, pending_bullet))
                pending_bullet = None
            elif (kind == "paragraph_close" and not token.hidden) or kind == "heading_close":
                out.append("")
            elif kind in ("fence", "code_block"):
                indent = "".join(prefixes) + "    "
                out.extend(indent + line for line in token.content.rstrip("\n").splitlines())
                out.append("")
            elif kind == "hr":
                out.extend(["-" * 20, ""])
            elif kind == "tr_close":
                out.append("".join(prefixes) + " | ".join(row))
                row = []
            elif kind == "table_close":
                out.append("")
        return "\n".join(out)

    def _block(self, text: str, prefixes: list[str], bullet: str | None) -> str:
        lead = "".join(prefixes[:-1]) + bullet if bullet else "".join(prefixes)
        follow = "".join(prefixes)
        lines = []
        for number, paragraph in enumerate(text.split("\n")):
            lines.append(
                textwrap.fill(
                    paragraph,
                    width=self.width,
                    initial_indent=lead if number == 0 else follow,
                    subsequent_indent=follow,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                or lead.rstrip()
            )
        return "\n".join(lines)
