"""The content model: what an issue says, as staff write it, independent of files and HTML.

Input (:mod:`mailer.issuefile`, the console's editor) builds these values; output
(:mod:`mailer.rendering`) reads them. The skeleton of a new issue lives here too, with
its placeholder texts, so the lint can refuse an issue nobody has written yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlsplit

from mailer.models import Publication


@dataclass(frozen=True)
class ImageContent:
    url: str
    alt: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class ItemContent:
    title: str
    body: str = ""
    link: str | None = None
    image: ImageContent | None = None
    contribution: int | None = None  # the LEP's contribution it came from


@dataclass(frozen=True)
class SectionContent:
    heading: str
    items: tuple[ItemContent, ...] = ()


@dataclass(frozen=True)
class EventContent:
    starts_on: date
    title: str
    location: str = ""
    link: str | None = None


@dataclass(frozen=True)
class SponsorContent:
    name: str
    link: str
    blurb: str
    logo: str | None = None
    logo_alt: str | None = None


@dataclass(frozen=True)
class IssueContent:
    """Everything an issue says, with the events diary it carries."""

    number: str
    subject: str
    preheader: str
    slot_at: datetime | None
    sections: tuple[SectionContent, ...]
    events: tuple[EventContent, ...] = ()
    sponsor: SponsorContent | None = None


@dataclass(frozen=True)
class IssueDocument:
    """An issue as staff write it (an issue file, or the console's editor)."""

    publication: Publication
    number: str
    subject: str
    preheader: str
    slot_at: datetime | None
    sections: tuple[SectionContent, ...]
    sponsor: SponsorContent | None = None

    def content(self, events: tuple[EventContent, ...] = ()) -> IssueContent:
        """What rendering needs: this document plus the events diary it carries."""
        return IssueContent(
            number=self.number,
            subject=self.subject,
            preheader=self.preheader,
            slot_at=self.slot_at,
            sections=self.sections,
            events=events,
            sponsor=self.sponsor,
        )


# The skeleton's placeholder texts: an issue still holding one is not ready to approve.
SUBJECT_PLACEHOLDER = ": the headline story"
PREHEADER_PLACEHOLDER = "One honest sentence that previews the issue"
ITEM_PLACEHOLDERS = ("Headline of the first item", "A LEP success story")
BODY_PLACEHOLDERS = (
    "Two or three sentences in **Markdown**. Link to the source with "
    "[descriptive text](https://www.gov.uk).",
    "What happened, where, and why.",
)
ALT_PLACEHOLDER = "Describe what the picture shows"
SPONSOR_PLACEHOLDERS = ("Sponsor name", "One or two sentences about the sponsor.")
PLACEHOLDER_HOSTS = ("images.example", "your-sponsor.example")


def skeleton(publication: Publication, number: str, slot_at: datetime | None) -> IssueDocument:
    """A ready-to-edit new issue: two sections with placeholder items to replace."""
    sponsor = (
        None
        if publication.internal
        else SponsorContent(
            name=SPONSOR_PLACEHOLDERS[0],
            link=f"https://{PLACEHOLDER_HOSTS[1]}",
            blurb=SPONSOR_PLACEHOLDERS[1],
            logo=f"https://{PLACEHOLDER_HOSTS[1]}/logo.png",
            logo_alt=f"{SPONSOR_PLACEHOLDERS[0]} logo",
        )
    )
    sections = (
        SectionContent(
            "Updates from government",
            (
                ItemContent(
                    title=ITEM_PLACEHOLDERS[0],
                    body=BODY_PLACEHOLDERS[0],
                    link="https://www.gov.uk",
                    image=ImageContent(
                        url=f"https://{PLACEHOLDER_HOSTS[0]}/photo.jpg",
                        alt=ALT_PLACEHOLDER,
                        width=600,
                        height=300,
                    ),
                ),
            ),
        ),
        SectionContent(
            "LEP news",
            (ItemContent(title=ITEM_PLACEHOLDERS[1], body=BODY_PLACEHOLDERS[1]),),
        ),
    )
    name = "LEP Network Bulletin" if publication.internal else "LEP Network Newsletter"
    return IssueDocument(
        publication=publication,
        number=number,
        subject=f"{name} {number}{SUBJECT_PLACEHOLDER}",
        preheader=PREHEADER_PLACEHOLDER,
        slot_at=slot_at,
        sections=sections,
        sponsor=sponsor,
    )


def _words(text: str) -> str:
    """Text reduced to its words, so a full stop or a capital does not hide a placeholder."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def _placeholder_url(url: str | None) -> bool:
    host = (urlsplit(url or "").hostname or "").rstrip(".")
    return host in PLACEHOLDER_HOSTS


def placeholders(content: IssueContent) -> list[str]:
    """Where the issue still holds the skeleton's placeholders (empty when none): its
    texts (compared word for word), its picture's description, and its placeholder
    addresses."""
    found = []
    if _words(content.subject).endswith(_words(SUBJECT_PLACEHOLDER)):
        found.append("the subject")
    if _words(content.preheader) == _words(PREHEADER_PLACEHOLDER):
        found.append("the preheader")
    titles = {_words(t) for t in ITEM_PLACEHOLDERS}
    bodies = [_words(b) for b in BODY_PLACEHOLDERS]
    for section in content.sections:
        for item in section.items:
            if _words(item.title) in titles:
                found.append(f"the item title {item.title!r}")
            if any(body in _words(item.body) for body in bodies):
                found.append(f"the text of {item.title!r}")
            if _placeholder_url(item.link):
                found.append(f"the link of {item.title!r} ({item.link})")
            image = item.image
            if image is not None and (
                _placeholder_url(image.url) or _words(image.alt) == _words(ALT_PLACEHOLDER)
            ):
                found.append(f"the picture of {item.title!r} ({image.url})")
    sponsor = content.sponsor
    if sponsor is not None and (
        _words(sponsor.name) == _words(SPONSOR_PLACEHOLDERS[0])
        or _words(SPONSOR_PLACEHOLDERS[1]) in _words(sponsor.blurb)
        or _words(sponsor.logo_alt or "") == _words(f"{SPONSOR_PLACEHOLDERS[0]} logo")
        or _placeholder_url(sponsor.link)
        or _placeholder_url(sponsor.logo)
    ):
        found.append("the sponsor")
    return found
