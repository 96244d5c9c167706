"""Rendering an issue once: sanitised Markdown into Jinja2 templates, premailer, text twin.

The result holds named slots (the reader's name, their signed token and, in the content
links of the HTML part, the redirect token of their organisation: :mod:`mailer.clicks`)
as unguessable placeholders, so each recipient's copy is made by cheap substitution
(:mod:`mailer.messages`), never by rendering or inlining again.

Errors::

    RenderError   a template is missing, broken, or uses a value that does not exist
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from mailer import clicks
from mailer.clicks import TrackedLink
from mailer.content import ImageContent, IssueContent
from mailer.markup import to_html, to_text
from mailer.publications import PublicationDefinition
from mailer.settings import Config, NetworkSettings, WebSettings

CONTENT_WIDTH = 552  # 600px card less 24px padding each side

# Every colour pair the templates use, light and dark; tests hold each to WCAG AA (4.5:1).
PALETTE: dict[str, dict[str, str]] = {
    "light": {
        "page": "#eef1f5",
        "card": "#ffffff",
        "text": "#1b1f24",
        "muted": "#4a5360",
        "heading": "#0b3d5c",
        "rule": "#0b3d5c",
        "link": "#0b5cad",
        "masthead": "#0b3d5c",
        "masthead_text": "#ffffff",
    },
    "dark": {
        "page": "#0f1216",
        "card": "#171b21",
        "text": "#e6e9ee",
        "muted": "#b4bcc8",
        "heading": "#9fd0ff",
        "rule": "#5a7a94",
        "link": "#8cc4ff",
        "masthead": "#0a2a40",
        "masthead_text": "#ffffff",
    },
}
# (foreground, background) pairs as they meet on the page.
CONTRAST_PAIRS = (
    ("text", "card"),
    ("muted", "card"),
    ("heading", "card"),
    ("link", "card"),
    ("masthead_text", "masthead"),
)


class RenderError(Exception):
    """The templates could not produce the issue; the message names template and line."""


@dataclass(frozen=True)
class Slots:
    """Placeholders for the per-recipient values, unguessable for each rendering."""

    nonce: str

    @classmethod
    def new(cls) -> Slots:
        return cls(nonce=secrets.token_hex(8))

    @property
    def name(self) -> str:
        return f"MAILER{self.nonce}NAME"

    @property
    def token(self) -> str:
        return f"MAILER{self.nonce}TOKEN"

    @property
    def organisation(self) -> str:
        """The redirect token of the reader's organisation (never the person's)."""
        return f"MAILER{self.nonce}ORG"


@dataclass(frozen=True)
class RenderedIssue:
    """The inlined HTML and the text, each holding the slots' placeholders; ``tracked``
    are the content links the HTML part sends through counted redirects, in order."""

    html: str
    text: str
    slots: Slots
    links: dict[str, str] = field(default_factory=dict)
    tracked: tuple[TrackedLink, ...] = ()

    def for_reader(self, name: str, token: str, organisation: str | None = None) -> tuple[str, str]:
        """The HTML and text one reader sees (the view-online page, the archive, previews):
        with ``organisation`` (a redirect token) the content links count; without, they
        are direct."""
        if organisation is None:
            html = self.direct_html()
        else:
            html = self.html.replace(self.slots.organisation, organisation)
        html = html.replace(self.slots.name, escape(name, quote=True))
        text = self.text.replace(self.slots.name, name)
        return html.replace(self.slots.token, token), text.replace(self.slots.token, token)

    def direct_html(self) -> str:
        """The HTML with every content link direct (test sends and previews)."""
        if not self.tracked:
            return self.html
        return clicks.direct(self.html, self.slots.organisation, self.tracked)


def date_label(day: date) -> str:
    """'Thursday 4 March 2027'."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_date(day: date) -> str:
    """'Wed 10 Mar'."""
    return f"{day:%a} {day.day} {day:%b}"


def _fit(image: ImageContent) -> dict[str, Any]:
    """Image attributes scaled to the content width (the lint refuses images with no size)."""
    width, height = image.width or CONTENT_WIDTH, image.height
    if height is None:
        return {"url": image.url, "alt": image.alt, "width": width, "height": None}
    if width > CONTENT_WIDTH:
        height = round(height * CONTENT_WIDTH / width)
        width = CONTENT_WIDTH
    return {"url": image.url, "alt": image.alt, "width": width, "height": height}


def _template_error(exc: Exception, fallback: str) -> RenderError:
    """Name the template file and line where a Jinja error happened."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return RenderError(f"{exc.filename or exc.name or fallback}:{exc.lineno}: {exc.message}")
    if isinstance(exc, jinja2.TemplateNotFound):
        return RenderError(f"template not found: {exc.name}")
    where = fallback
    trace = exc.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith((".html", ".txt")):
            where = f"{filename}:{trace.tb_lineno}"
        trace = trace.tb_next
    return RenderError(f"{where}: {exc}")


class Renderer:
    """Renders issues with the templates in one folder; create once, use for many issues."""

    def __init__(
        self,
        templates_dir: Path,
        network: NetworkSettings,
        web: WebSettings,
        zone: ZoneInfo,
        *,
        count_clicks: bool = False,
    ) -> None:
        self.templates_dir = templates_dir
        self.network = network
        self.web = web
        self.zone = zone
        self.count_clicks = count_clicks
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=False,
            lstrip_blocks=False,
            keep_trailing_newline=True,
        )

    @classmethod
    def for_config(cls, config: Config) -> Renderer:
        """The renderer of a deployment: its templates, network, site and time zone."""
        settings = config.settings
        return cls(
            config.templates_dir,
            settings.network,
            settings.web,
            settings.calendar.zone,
            count_clicks=settings.reports.count_clicks,
        )

    def links(self, slots: Slots) -> dict[str, str]:
        root = self.web.root
        return {
            "unsubscribe": f"{root}/u/{slots.token}",
            "preferences": f"{root}/p/{slots.token}",
            "view_online": f"{root}/v/{slots.token}",
            "privacy": f"{root}/privacy",
        }

    def _links(self, definition: PublicationDefinition, slots: Slots) -> dict[str, str]:
        """The reader's links; an internal publication's readers (LEP contacts, by the
        firewall) also get theirs to send news for the next issue."""
        links = self.links(slots)
        if definition.publication.internal:
            links["contribute"] = f"{self.web.root}/contribute/{slots.token}"
        return links

    def _context(
        self, content: IssueContent, definition: PublicationDefinition, slots: Slots, html: bool
    ) -> dict[str, Any]:
        title = f"{definition.name.removeprefix('LEP Network ')} {content.number}"
        sections = [
            {
                "heading": section.heading,
                "items": [
                    {
                        "title": item.title,
                        "link": item.link,
                        "image": _fit(item.image) if item.image else None,
                        "body_html": Markup(to_html(item.body)) if html else "",  # noqa: S704
                        "body_text": "" if html else to_text(item.body),
                    }
                    for item in section.items
                ],
            }
            for section in content.sections
        ]
        return {
            "issue": {
                "number": content.number,
                "title": title,
                "subject": content.subject,
                "preheader": content.preheader,
                "date_label": (
                    date_label(content.slot_at.astimezone(self.zone).date())
                    if content.slot_at
                    else ""
                ),
            },
            "publication": definition.model_dump(),
            "network": self.network.model_dump(),
            "sections": sections,
            "events": [
                {
                    "date_label": short_date(event.starts_on),
                    "title": event.title,
                    "location": event.location,
                    "link": event.link,
                }
                for event in content.events
            ],
            "sponsor": content.sponsor.__dict__ if content.sponsor else None,
            "links": self._links(definition, slots),
            "recipient": {"name": slots.name},
            "palette": PALETTE,
        }

    def _render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(context)
        except (jinja2.TemplateError, TypeError, ValueError, AttributeError) as exc:
            raise _template_error(exc, str(self.templates_dir / name)) from exc

    def render(
        self,
        content: IssueContent,
        definition: PublicationDefinition,
        slots: Slots | None = None,
    ) -> RenderedIssue:
        """Render and inline ``content`` once for ``definition``'s publication.

        :raises RenderError: a template is missing, has a syntax error or uses an undefined
            value; the message names the template and line.
        """
        slots = slots or Slots.new()
        publication = definition.publication.value
        html = self._render(
            f"{publication}.html", self._context(content, definition, slots, html=True)
        )
        text = self._render(
            f"{publication}.txt", self._context(content, definition, slots, html=False)
        )
        tracked: tuple[TrackedLink, ...] = ()
        if self.count_clicks:
            html, tracked = clicks.track(
                html,
                root=self.web.root,
                slot=slots.organisation,
                keep=tuple(self._links(definition, slots).values()),
            )
        return RenderedIssue(
            html=inline_css(html),
            text=_tidy_text(text),
            slots=slots,
            links=self.links(slots),
            tracked=tracked,
        )


def inline_css(html: str) -> str:
    """Inline the CSS once (premailer, settings from STANDARDS.md) and restore the doctype."""
    from premailer import Premailer  # here: a slow import most commands never need

    inlined: str = Premailer(
        html,
        strip_important=False,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
        remove_classes=False,
        keep_style_tags=False,
        # Keep the width and height attributes the templates wrote (a CSS "height: auto"
        # must not become height="auto").
        disable_basic_attributes=["width", "height"],
    ).transform()
    body = inlined.removeprefix("<!DOCTYPE html>").lstrip()
    return "<!doctype html>\n" + body


def _tidy_text(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    return "\n".join(tidy).strip("\n") + "\n"
