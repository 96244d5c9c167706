"""Shared fixtures for rendering tests: the shipped templates and the realistic issues."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mailer import issuefile, publications
from mailer.content import EventContent, IssueContent
from mailer.models import Publication
from mailer.rendering import Renderer, Slots
from mailer.settings import CalendarSettings, NetworkSettings, WebSettings
from tests.conftest import LISTS, ROOT

DATA = Path(__file__).parent / "data" / "issues"
GOLDEN = Path(__file__).parent / "golden"
FIXED_SLOTS = Slots("0123456789abcdef")
NETWORK = NetworkSettings()
WEB = WebSettings(base_url="https://lepnetwork.example")
ZONE = CalendarSettings().zone  # Europe/London, as config.toml ships
EVENTS = (
    EventContent(
        date(2027, 3, 10),
        "LEP Network spring conference",
        "QEII Centre, London",
        "https://lepnetwork.example/conference",
    ),
    EventContent(date(2027, 3, 16), "Skills England webinar for LEP officers", "Online"),
)


def renderer(templates: Path = ROOT / "templates") -> Renderer:
    return Renderer(templates, NETWORK, WEB, ZONE)


def content(publication: Publication) -> IssueContent:
    return issuefile.read(DATA / f"{publication.value}.md", ZONE).content(EVENTS)


def definition(publication: Publication) -> publications.PublicationDefinition:
    return publications.load(LISTS, publication)
