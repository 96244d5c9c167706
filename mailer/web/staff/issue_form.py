"""The structured issue editor's form: its fields to and from the issue document (by the
issue file's own rules, each error on its field), its block operations, its autosave.

Field names: ``subject``, ``preheader``, ``slot``, ``sponsor.<key>``, ``s<i>.heading`` and
``s<i>.i<j>.<key>`` (sections and items by position). Block operations are the values of
the form's ``op`` button: ``add-section``, ``add-item:S``, and ``up:``, ``down:``,
``remove:`` followed by ``S`` (a section) or ``S.J`` (an item).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from mailer import clock, issuefile, media
from mailer.content import ImageContent, IssueDocument, ItemContent, SectionContent, SponsorContent
from mailer.markup import item_body, single_line
from mailer.models import Issue, IssueAutosave, MediaImage, Publication

MAX_SECTIONS = 30
MAX_ITEMS = 60  # in one section
ITEM_KEYS = (
    "title",
    "link",
    "image",
    "image_alt",
    "image_size",
    "media",
    "media_was",
    "body",
    "contribution",
)
SPONSOR_KEYS = ("name", "link", "blurb", "logo", "logo_alt", "media", "media_was")
_SECTION = re.compile(r"s(\d{1,3})\.heading")
_ITEM = re.compile(r"s(\d{1,3})\.i(\d{1,3})\.([a-z_]+)")
_SIZE = re.compile(r"(\d{1,4})\s*[xX×]\s*(\d{1,4})")  # noqa: RUF001
_OP = re.compile(r"(add-section|add-item:(\d{1,3})|(up|down|remove):(\d{1,3})(?:\.(\d{1,3}))?)")


@dataclass
class ItemFields:
    title: str = ""
    link: str = ""
    image: str = ""
    image_alt: str = ""
    image_size: str = ""
    media: str = ""  # the library image chosen in the select (its name)
    media_was: str = ""  # what the select showed when the form was made
    body: str = ""
    contribution: str = ""  # the LEP contribution it came from (a hidden field)


@dataclass
class SectionFields:
    heading: str = ""
    items: list[ItemFields] = field(default_factory=list)


@dataclass
class SponsorFields:
    name: str = ""
    link: str = ""
    blurb: str = ""
    logo: str = ""
    logo_alt: str = ""
    media: str = ""
    media_was: str = ""

    def empty(self) -> bool:
        return not any((self.name, self.link, self.blurb, self.logo, self.logo_alt))


@dataclass
class IssueFields:
    """Everything the editor's form holds, as typed (it may not be a valid issue yet)."""

    publication: Publication
    subject: str = ""
    preheader: str = ""
    slot: str = ""  # the chosen open slot's time, ISO 8601 in the calendar's zone; "": none
    sponsor: SponsorFields = field(default_factory=SponsorFields)
    sections: list[SectionFields] = field(default_factory=list)
    # The draft as it was when the form was made (its last change's time): a save from a
    # form made before someone else's change is stopped once (:func:`conflict`).
    version: str = field(default="", compare=False)


def version_of(document: IssueDocument) -> str:
    """The draft's content as a short fingerprint: it changes with any change to it."""
    return hashlib.sha256(repr(document).encode()).hexdigest()[:20]


def conflict(fields: IssueFields, issue: Issue, document: IssueDocument) -> str | None:
    """Why saving ``fields`` would undo a change made to the draft (``document``, as
    stored) since its form was made (None: it would not). The form shown again carries
    the draft's current version, so saving it a second time replaces the draft knowingly."""
    current = version_of(document)
    if not fields.version or fields.version == current:
        return None
    who = issue.last_edited_by or "someone"
    fields.version = current
    return (
        f"Not saved: {who} changed this draft since you opened it (an accepted LEP "
        "contribution, say), and saving your form would undo that. What you typed is "
        "still here: open the issue in another tab to compare, then Save again to replace "
        "the draft with this form, or reload the page to drop your changes."
    )


# --- to and from the document ---------------------------------------------------------


def _size(image: ImageContent) -> str:
    return f"{image.width}x{image.height}" if image.width and image.height else ""


def from_document(document: IssueDocument, zone: ZoneInfo) -> IssueFields:
    """The form's fields for a stored issue."""
    sponsor = document.sponsor
    return IssueFields(
        publication=document.publication,
        subject=document.subject,
        preheader=document.preheader,
        slot=document.slot_at.astimezone(zone).isoformat() if document.slot_at else "",
        sponsor=SponsorFields(
            name=sponsor.name,
            link=sponsor.link,
            blurb=sponsor.blurb,
            logo=sponsor.logo or "",
            logo_alt=sponsor.logo_alt or "",
        )
        if sponsor is not None
        else SponsorFields(),
        sections=[
            SectionFields(
                section.heading,
                [
                    ItemFields(
                        title=item.title,
                        link=item.link or "",
                        image=item.image.url if item.image else "",
                        image_alt=item.image.alt if item.image else "",
                        image_size=_size(item.image) if item.image else "",
                        body=item.body,
                        contribution=str(item.contribution or ""),
                    )
                    for item in section.items
                ],
            )
            for section in document.sections
        ],
    )


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def from_form(form: Mapping[str, Any], publication: Publication) -> IssueFields:
    """The fields a submitted form holds (sections and items in the order of their
    numbers; at most 30 sections of 60 items are read)."""
    sections: dict[int, set[int]] = {}
    for name in form:
        found = _SECTION.fullmatch(name) or _ITEM.fullmatch(name)
        if found:
            numbers = sections.setdefault(int(found.group(1)), set())
            if found.re is _ITEM:
                numbers.add(int(found.group(2)))
    read = []
    for s in sorted(sections)[:MAX_SECTIONS]:
        items = [
            ItemFields(**{key: _text(form, f"s{s}.i{j}.{key}") for key in ITEM_KEYS})
            for j in sorted(sections[s])[:MAX_ITEMS]
        ]
        read.append(SectionFields(_text(form, f"s{s}.heading"), items))
    sponsor = SponsorFields(**{key: _text(form, f"sponsor.{key}") for key in SPONSOR_KEYS})
    return IssueFields(
        publication=publication,
        subject=_text(form, "subject"),
        preheader=_text(form, "preheader"),
        slot=_text(form, "slot").strip(),
        sponsor=sponsor if not publication.internal else SponsorFields(),
        sections=read,
        version=_text(form, "version").strip(),
    )


def to_json(fields: IssueFields) -> str:
    return json.dumps(dataclasses.asdict(fields), ensure_ascii=False)


def from_json(text: str) -> IssueFields | None:
    """The fields of an autosave; None when it cannot be read (a older form, say)."""
    try:
        data = json.loads(text)
        return IssueFields(
            publication=Publication(data["publication"]),
            subject=str(data["subject"]),
            preheader=str(data["preheader"]),
            slot=str(data["slot"]),
            sponsor=SponsorFields(**data["sponsor"]),
            sections=[
                SectionFields(
                    str(section["heading"]), [ItemFields(**item) for item in section["items"]]
                )
                for section in data["sections"]
            ],
            version=str(data.get("version", "")),
        )
    except (ValueError, KeyError, TypeError):
        return None


# --- the library's images -------------------------------------------------------------


def resolve_picks(fields: IssueFields, library: Mapping[str, MediaImage], root: str) -> None:
    """Apply the library images chosen in the selects: an item's picture (or the
    sponsor's logo) becomes the image's address, size and alt text (it describes that
    picture; it can be changed after); choosing "none" again takes the library image
    away. An address typed that is a library image's gets that image's size when it has
    none."""
    by_url = {media.url(root, name): row for name, row in library.items()}
    for section in fields.sections:
        for item in section.items:
            chosen = library.get(item.media)
            if item.media != item.media_was and chosen is not None:
                item.image = media.url(root, chosen.name)
                item.image_size = f"{chosen.width}x{chosen.height}"
                item.image_alt = chosen.alt
            elif item.media != item.media_was and not item.media and item.media_was:
                was = library.get(item.media_was)
                if was is not None and item.image == media.url(root, was.name):
                    item.image = item.image_size = ""
                    item.image_alt = "" if item.image_alt == was.alt else item.image_alt
            known = by_url.get(item.image.strip())
            if known is not None and not item.image_size.strip():
                item.image_size = f"{known.width}x{known.height}"
    sponsor = fields.sponsor
    chosen = library.get(sponsor.media)
    if sponsor.media != sponsor.media_was and chosen is not None:
        sponsor.logo = media.url(root, chosen.name)
        sponsor.logo_alt = chosen.alt
    elif sponsor.media != sponsor.media_was and not sponsor.media and sponsor.media_was:
        was = library.get(sponsor.media_was)
        if was is not None and sponsor.logo == media.url(root, was.name):
            sponsor.logo = ""
            sponsor.logo_alt = "" if sponsor.logo_alt == was.alt else sponsor.logo_alt


def picked(url: str, library: Mapping[str, MediaImage], root: str) -> str:
    """The name of the library image at ``url`` ("" when it is none of them)."""
    for name in library:
        if media.url(root, name) == url.strip():
            return name
    return ""


# --- block operations -----------------------------------------------------------------


def _swap(blocks: list[Any], index: int, other: int) -> int:
    if 0 <= index < len(blocks) and 0 <= other < len(blocks):
        blocks[index], blocks[other] = blocks[other], blocks[index]
        return other
    return index


def apply(fields: IssueFields, op: str) -> str:
    """Carry out a block operation on ``fields``; returns the id of the block to show
    afterwards (the one moved or added, or the section of one removed). An operation
    that is not one, or names no block, changes nothing."""
    found = _OP.fullmatch(op)
    sections = fields.sections
    if found is None:
        return ""
    if op == "add-section":
        if len(sections) < MAX_SECTIONS:
            sections.append(SectionFields("", [ItemFields()]))
        return f"s{len(sections) - 1}"
    if found.group(2) is not None:  # add-item:S
        s = int(found.group(2))
        if s >= len(sections):
            return ""
        if len(sections[s].items) < MAX_ITEMS:
            sections[s].items.append(ItemFields())
        return f"s{s}-i{len(sections[s].items) - 1}"
    verb, s, j = found.group(3), int(found.group(4)), found.group(5)
    if s >= len(sections):
        return ""
    if j is None:
        if verb == "remove":
            del sections[s]
            return f"s{min(s, len(sections) - 1)}" if sections else "sections"
        return f"s{_swap(sections, s, s - 1 if verb == 'up' else s + 1)}"
    items, index = sections[s].items, int(j)
    if index >= len(items):
        return ""
    if verb == "remove":
        del items[index]
        return f"s{s}"
    return f"s{s}-i{_swap(items, index, index - 1 if verb == 'up' else index + 1)}"


# --- building the document, field by field --------------------------------------------


class _Errors(dict[str, str]):
    def line(
        self, name: str, value: str, label: str, *, max_length: int, required: bool = True
    ) -> str:
        try:
            return single_line(value, label, max_length=max_length, required=required)
        except ValueError as exc:
            self[name] = str(exc)
            return ""

    def url(self, name: str, value: str, label: str, *, https_only: bool = False) -> str | None:
        value = value.strip()
        if not value:
            return None
        schemes = ("https://",) if https_only else ("https://", "http://")
        if not value.startswith(schemes) or any(ch.isspace() for ch in value):
            wanted = "https://" if https_only else "https:// (or http://)"
            self[name] = f"{label}: give a web address starting with {wanted}, with no spaces"
            return None
        return value


def _body(errors: _Errors, name: str, body: str) -> str:
    try:
        return item_body(body)
    except ValueError as exc:
        errors[name] = str(exc)
        return ""


def _image(errors: _Errors, prefix: str, item: ItemFields, label: str) -> ImageContent | None:
    url = errors.url(f"{prefix}.image", item.image, f"{label} image", https_only=True)
    alt = errors.line(
        f"{prefix}.image_alt",
        item.image_alt,
        f"{label} image description",
        max_length=300,
        required=False,
    )
    size = item.image_size.strip()
    width = height = None
    if size:
        matched = _SIZE.fullmatch(size)
        if matched is None:
            errors[f"{prefix}.image_size"] = (
                f"{label} image size: give the width and height in pixels, like 600x300"
            )
        else:
            width, height = int(matched.group(1)), int(matched.group(2))
    if url is None:
        if not item.image.strip():
            for key, typed in (("image_alt", item.image_alt), ("image_size", size)):
                if typed.strip():
                    errors[f"{prefix}.{key}"] = (
                        f"{label}: a description or size without an image address; give the "
                        "image (pick one from the library or type its address), or clear this"
                    )
        return None
    return ImageContent(url=url, alt=alt, width=width, height=height)


def _sponsor(errors: _Errors, sponsor: SponsorFields) -> SponsorContent | None:
    if sponsor.empty():
        return None
    name = errors.line("sponsor.name", sponsor.name, "Sponsor name", max_length=200)
    link = errors.url("sponsor.link", sponsor.link, "Sponsor link")
    if link is None and "sponsor.link" not in errors:
        errors["sponsor.link"] = "Sponsor link: must not be empty"
    blurb = errors.line("sponsor.blurb", sponsor.blurb, "Sponsor text", max_length=1000)
    logo = errors.url("sponsor.logo", sponsor.logo, "Sponsor logo", https_only=True)
    logo_alt = errors.line(
        "sponsor.logo_alt",
        sponsor.logo_alt,
        "Sponsor logo description",
        max_length=300,
        required=bool(sponsor.logo.strip()),
    )
    return SponsorContent(name, link or "", blurb, logo, logo_alt or None)


def build(fields: IssueFields, zone: ZoneInfo) -> tuple[IssueDocument | None, dict[str, str]]:
    """The issue document the fields describe, or None and each field's error (by field
    name; ``form`` for an error of the whole). The document is exactly what the issue
    file of the same content reads as (written out and read back to be sure); its number
    is left to its slot (:func:`mailer.editorial.save` binds it)."""
    errors = _Errors()
    subject = errors.line("subject", fields.subject, "Subject", max_length=200)
    preheader = errors.line(
        "preheader", fields.preheader, "Preheader", max_length=300, required=False
    )
    slot_at: datetime | None = None
    try:
        slot_at = issuefile.parse_slot(fields.slot, zone, "Slot")
    except issuefile.IssueFileError as exc:
        errors["slot"] = str(exc)
    sections = []
    for s, section in enumerate(fields.sections):
        heading = errors.line(
            f"s{s}.heading", section.heading, f"Section {s + 1} heading", max_length=200
        )
        items = []
        for j, item in enumerate(section.items):
            prefix, label = f"s{s}.i{j}", f"Item {s + 1}.{j + 1}"
            items.append(
                ItemContent(
                    title=errors.line(
                        f"{prefix}.title", item.title, f"{label} headline", max_length=300
                    ),
                    body=_body(errors, f"{prefix}.body", item.body),
                    link=errors.url(f"{prefix}.link", item.link, f"{label} link"),
                    image=_image(errors, prefix, item, label),
                    contribution=int(item.contribution)
                    if re.fullmatch(r"[1-9]\d{0,11}", item.contribution.strip())
                    else None,
                )
            )
        sections.append(SectionContent(heading, tuple(items)))
    sponsor = None if fields.publication.internal else _sponsor(errors, fields.sponsor)
    if errors:
        return None, dict(errors)
    document = IssueDocument(
        publication=fields.publication,
        number="",
        subject=subject,
        preheader=preheader,
        slot_at=slot_at,
        sections=tuple(sections),
        sponsor=sponsor,
    )
    try:
        same = issuefile.parse(issuefile.dump(document, zone), zone, "the issue") == document
    except issuefile.IssueFileError as exc:
        return None, {"form": f"This cannot be written as an issue file: {exc}"}
    if not same:
        return None, {"form": "This cannot be written as an issue file and read back the same"}
    return document, {}


# --- the autosave ----------------------------------------------------------------------


def _autosave_row(session: Session, issue_id: int, email: str) -> IssueAutosave | None:
    return session.exec(
        select(IssueAutosave).where(
            col(IssueAutosave.issue_id) == issue_id, col(IssueAutosave.staff_email) == email
        )
    ).first()


def keep(session: Session, issue_id: int, email: str, fields: IssueFields) -> datetime:
    """Keep what ``email`` typed in the editor of ``issue_id`` (one autosave each); flushes."""
    row = _autosave_row(session, issue_id, email) or IssueAutosave(
        issue_id=issue_id, staff_email=email, form=""
    )
    kept = dataclasses.replace(
        fields,
        sponsor=dataclasses.replace(fields.sponsor, media="", media_was=""),
        sections=[
            SectionFields(
                section.heading,
                [dataclasses.replace(item, media="", media_was="") for item in section.items],
            )
            for section in fields.sections
        ],
    )  # the library's choices are applied already; the page shows them from the addresses
    row.form = to_json(kept)
    row.saved_at = clock.now()
    session.add(row)
    session.flush()
    return row.saved_at


def autosaved(session: Session, issue: Issue, email: str) -> tuple[IssueFields, datetime] | None:
    """What ``email`` typed in the editor since the issue was last saved, if anything."""
    assert issue.id is not None
    row = _autosave_row(session, issue.id, email)
    if row is None or row.saved_at <= issue.updated_at:
        return None
    fields = from_json(row.form)
    if fields is None or fields.publication is not issue.publication:
        return None
    return fields, row.saved_at


def drop(session: Session, issue_id: int, email: str) -> None:
    """Forget ``email``'s autosave of ``issue_id`` (saved or discarded)."""
    row = _autosave_row(session, issue_id, email)
    if row is not None:
        session.delete(row)
        session.flush()
