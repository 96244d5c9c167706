"""The content model: what an issue says, as staff write it, independent of files and HTML.

Input (:mod:`mailer.issuefile`, the console's editor) builds these values; output
(:mod:`mailer.rendering`) reads them. The skeleton of a new issue lives here too, with
its placeholder texts, so the lint can refuse an issue nobody has written yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

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
PLACEHOLDER_IMAGE_HOST = "images.example"
SPONSOR_PLACEHOLDERS = ("Sponsor name", "One or two sentences about the sponsor.")


def skeleton(publication: Publication, number: str, slot_at: datetime | None) -> IssueDocument:
    """A ready-to-edit new issue: two sections with placeholder items to replace."""
    sponsor = (
        None
        if publication.internal
        else SponsorContent(
            name=SPONSOR_PLACEHOLDERS[0],
            link="https://sponsor.example",
            blurb=SPONSOR_PLACEHOLDERS[1],
            logo="https://sponsor.example/logo.png",
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
                        url=f"https://{PLACEHOLDER_IMAGE_HOST}/photo.jpg",
                        alt="Describe what the picture shows",
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


def placeholders(content: IssueContent) -> list[str]:
    """Where the issue still holds the skeleton's placeholder text (empty when none)."""
    found = []
    if content.subject.endswith(SUBJECT_PLACEHOLDER):
        found.append("the subject")
    if content.preheader == PREHEADER_PLACEHOLDER:
        found.append("the preheader")
    for section in content.sections:
        for item in section.items:
            if item.title in ITEM_PLACEHOLDERS:
                found.append(f"the item title {item.title!r}")
            if item.body.strip() in BODY_PLACEHOLDERS:
                found.append(f"the text of {item.title!r}")
            if item.image is not None and _placeholder_url(item.image.url):
                found.append(f"the picture of {item.title!r} ({item.image.url})")
    sponsor = content.sponsor
    if sponsor is not None and (
        sponsor.name == SPONSOR_PLACEHOLDERS[0] or sponsor.blurb == SPONSOR_PLACEHOLDERS[1]
    ):
        found.append("the sponsor")
    return found


def _placeholder_url(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0].lower()
    return host == PLACEHOLDER_IMAGE_HOST
