"""Checks on a rendered issue before it may be approved: size, images, links, length.

Errors block approval; warnings are listed for staff to judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser

from mailer.content import IssueContent, placeholders
from mailer.rendering import RenderedIssue

GMAIL_CLIP_BYTES = 100 * 1024
SUBJECT_LIMIT = 78
PREHEADER_LIMIT = 150
_FAKE_REPLY = re.compile(r"^\s*(re|fw|fwd)\s*:", re.IGNORECASE)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} [{self.code}]"


class _Scanner(HTMLParser):
    """Collects every image and link of the HTML part."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found)
        elif tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))


def lint(content: IssueContent, rendered: RenderedIssue) -> list[Finding]:
    """Everything wrong or doubtful with an issue, errors first."""
    findings: list[Finding] = []

    def error(code: str, message: str) -> None:
        findings.append(Finding(Severity.ERROR, code, message))

    def warning(code: str, message: str) -> None:
        findings.append(Finding(Severity.WARNING, code, message))

    size = len(rendered.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        error(
            "html-size",
            f"the HTML part is {size / 1024:.0f} KB after inlining; Gmail clips messages over "
            f"about {GMAIL_CLIP_BYTES // 1024} KB and hides the footer with the unsubscribe link",
        )
    scanner = _Scanner()
    scanner.feed(rendered.html)
    for image in scanner.images:
        source = image.get("src") or "(no src)"
        if not (image.get("alt") or "").strip():
            error("image-alt", f"image {source} has no alt text")
        if not image.get("width") or not image.get("height"):
            error("image-size", f"image {source} has no width and height (Image-Size: 600x300)")
        if not source.startswith("https://"):
            warning("image-https", f"image {source} is not loaded over https")
    site = rendered.links.get("privacy", "").removesuffix("/privacy")
    own_http = False
    # A counted redirect's target is checked as the link it stands for.
    for link in sorted(set(scanner.links) | {t.url for t in rendered.tracked}):
        if link.startswith(("https://", "mailto:")):
            continue
        if site and link.startswith(site):
            own_http = True
            continue
        warning("link-https", f"link {link} is not https")
    if own_http:
        warning(
            "site-https",
            f"links to the site ({site}) are not https: set [web] base_url to an https address "
            "before sending (mailbox providers need https for one-click unsubscribe)",
        )
    for section in content.sections:
        if not section.items:
            error("empty-section", f"section '{section.heading}' has no items")
        for item in section.items:
            if not item.body.strip() and not item.link:
                warning("empty-item", f"item '{item.title}' has no text and no link")
    if not content.sections:
        error("no-sections", "the issue has no sections")
    for where in placeholders(content):
        error("placeholder", f"{where} is still the new issue's placeholder: write it")
    if len(content.subject) > SUBJECT_LIMIT:
        warning(
            "subject-length",
            f"the subject has {len(content.subject)} characters; over {SUBJECT_LIMIT} it is cut "
            "short on phones",
        )
    if _FAKE_REPLY.match(content.subject):
        error("subject-reply", "the subject starts with Re: or Fwd:, which is not honest")
    if not content.preheader.strip():
        warning("preheader-empty", "there is no preheader: inboxes will show the first text")
    elif len(content.preheader) > PREHEADER_LIMIT:
        warning(
            "preheader-length",
            f"the preheader has {len(content.preheader)} characters (over {PREHEADER_LIMIT})",
        )
    unsubscribe = rendered.links.get("unsubscribe", "")
    for part, body in (("HTML", rendered.html), ("text", rendered.text)):
        if not unsubscribe or unsubscribe not in body:
            error("unsubscribe", f"the {part} part has no unsubscribe link")
    findings.sort(key=lambda f: f.severity != Severity.ERROR)
    return findings


def errors(findings: list[Finding]) -> list[Finding]:
    """Only the findings that block approval."""
    return [f for f in findings if f.severity is Severity.ERROR]
