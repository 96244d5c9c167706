"""The issue file: YAML front matter and Markdown sections, read and written losslessly.

    ---
    publication: bulletin
    number: 2027/05
    subject: Skills England, the spring conference and LEP news
    preheader: Booking opens for the LEP Network spring conference
    slot: 2027-03-04T09:30:00+00:00
    ---

    ## Updates from government

    ### Skills England publishes its first assessment
    Link: https://www.gov.uk/...
    Image: https://images.example/skills.jpg
    Image-Alt: Apprentices at work in an engineering workshop
    Image-Size: 600x300

    The Markdown body of the item ...

A ``## `` line starts a section, a ``### `` line an item; ``Link:``, ``Image:``,
``Image-Alt:``, ``Image-Size:`` and ``Contribution:`` (the number of the LEP's
contribution it came from) lines may follow an item's title directly. The
newsletter may have a ``sponsor:`` mapping (name, link, blurb, logo, logo_alt).

Errors::

    IssueFileError   the file cannot be read; the message names the line and field
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from mailer import content
from mailer.content import ImageContent, IssueDocument, ItemContent, SectionContent, SponsorContent
from mailer.markup import single_line
from mailer.models import Publication

FRONT_KEYS = ("publication", "number", "subject", "preheader", "slot", "sponsor")
SPONSOR_KEYS = ("name", "link", "blurb", "logo", "logo_alt")
ITEM_KEYS = {
    "link": "Link",
    "image": "Image",
    "image-alt": "Image-Alt",
    "image-size": "Image-Size",
    "contribution": "Contribution",
}
NUMBER = re.compile(r"^\d{4}/\d{2}$")
_META = re.compile(r"^(Link|Image|Image-Alt|Image-Size|Contribution):\s*(.*)$", re.IGNORECASE)
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


class IssueFileError(ValueError):
    """The issue file is malformed."""


def _url(value: str, where: str, schemes: tuple[str, ...] = ("https://", "http://")) -> str:
    value = value.strip()
    if not value.startswith(schemes) or any(ch.isspace() for ch in value):
        raise IssueFileError(f"{where}: expected an http(s) address, got {value!r}")
    return value


def _line(value: object, where: str, *, max_length: int = 300, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str | int | float):
        raise IssueFileError(f"{where}: expected text")
    try:
        return single_line(str(value), where, max_length=max_length, required=required)
    except ValueError as exc:
        raise IssueFileError(str(exc)) from None


def parse_slot(value: object, zone: ZoneInfo, where: str = "slot") -> datetime | None:
    """A send time: ISO 8601, with or without offset (then local time in ``zone``).

    :raises IssueFileError: not a date and time.
    """
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        raise IssueFileError(f"{where}: give a time as well, e.g. {value.isoformat()}T09:30")
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise IssueFileError(
                f"{where}: expected a date and time like 2027-03-04T09:30, got {value!r}"
            ) from None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def _front(text: str, path: str) -> tuple[dict[str, Any], int]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise IssueFileError(f"{path}:1: the file must start with '---' and front matter")
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            try:
                data = yaml.safe_load("\n".join(lines[1 : number - 1])) or {}
            except yaml.YAMLError as exc:
                raise IssueFileError(f"{path}: front matter is not valid YAML: {exc}") from None
            if not isinstance(data, dict):
                raise IssueFileError(f"{path}:2: front matter must be 'key: value' lines")
            return data, number
    raise IssueFileError(f"{path}: the front matter is not closed by a '---' line")


def _sponsor(raw: object, path: str) -> SponsorContent | None:
    if raw in (None, "", {}):
        return None
    if not isinstance(raw, dict):
        raise IssueFileError(f"{path}: sponsor: expected name, link, blurb, logo, logo_alt")
    unknown = sorted(set(raw) - set(SPONSOR_KEYS))
    if unknown:
        raise IssueFileError(f"{path}: sponsor: unknown key(s): {', '.join(map(str, unknown))}")
    logo = raw.get("logo")
    return SponsorContent(
        name=_line(raw.get("name"), f"{path}: sponsor.name", max_length=200),
        link=_url(str(raw.get("link") or ""), f"{path}: sponsor.link"),
        blurb=_line(raw.get("blurb"), f"{path}: sponsor.blurb", max_length=1000),
        logo=_url(str(logo), f"{path}: sponsor.logo", ("https://",)) if logo else None,
        logo_alt=_line(raw.get("logo_alt"), f"{path}: sponsor.logo_alt", required=bool(logo))
        or None,
    )


@dataclass
class _ItemDraft:
    title: str
    line: int
    meta: dict[str, str] = field(default_factory=dict)
    body: list[str] = field(default_factory=list)

    def build(self, path: str) -> ItemContent:
        where = f"{path}:{self.line}"
        image = None
        if "image" in self.meta:
            size = self.meta.get("image-size", "")
            width = height = None
            if size:
                match = re.fullmatch(r"(\d{1,4})\s*[xX×]\s*(\d{1,4})", size.strip())  # noqa: RUF001
                if not match:
                    raise IssueFileError(
                        f"{where}: Image-Size: expected WIDTHxHEIGHT, got {size!r}"
                    )
                width, height = int(match.group(1)), int(match.group(2))
            image = ImageContent(
                url=_url(self.meta["image"], f"{where}: Image", ("https://",)),
                alt=_line(self.meta.get("image-alt", ""), f"{where}: Image-Alt", required=False),
                width=width,
                height=height,
            )
        elif "image-alt" in self.meta or "image-size" in self.meta:
            raise IssueFileError(f"{where}: Image-Alt or Image-Size without an Image: line")
        link = self.meta.get("link")
        source = self.meta.get("contribution")
        if source is not None and not re.fullmatch(r"[1-9]\d{0,11}", source):
            raise IssueFileError(f"{where}: Contribution: expected its number, got {source!r}")
        return ItemContent(
            title=self.title,
            body="\n".join(self.body).strip("\n"),
            link=_url(link, f"{where}: Link") if link else None,
            image=image,
            contribution=int(source) if source is not None else None,
        )


def parse(text: str, zone: ZoneInfo, path: str = "<issue>") -> IssueDocument:
    """Read an issue file's text; a slot without an offset is local time in ``zone``.

    :raises IssueFileError: the front matter or a section is malformed (names the line).
    """
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    front, body_start = _front(text, path)
    unknown = sorted(set(front) - set(FRONT_KEYS))
    if unknown:
        raise IssueFileError(f"{path}: unknown front matter key(s): {', '.join(map(str, unknown))}")
    raw_publication = str(front.get("publication") or "").strip()
    try:
        publication = Publication(raw_publication)
    except ValueError:
        raise IssueFileError(
            f"{path}: publication: expected bulletin or newsletter, got {raw_publication!r}"
        ) from None
    number = str(front.get("number") or "").strip()
    if number and not NUMBER.match(number):
        raise IssueFileError(f"{path}: number: expected YYYY/NN like 2027/05, got {number!r}")
    sponsor = _sponsor(front.get("sponsor"), path)
    if sponsor is not None and publication.internal:
        raise IssueFileError(f"{path}: sponsor: the {publication.value} carries no sponsor slot")

    sections: list[tuple[str, int, list[_ItemDraft]]] = []
    item: _ItemDraft | None = None
    in_fence = False
    in_meta = False
    for number_, line in enumerate(text.split("\n")[body_start:], start=body_start + 1):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and line.startswith("## ") and not line.startswith("### "):
            heading = _line(line[3:], f"{path}:{number_}: section heading", max_length=200)
            sections.append((heading, number_, []))
            item = None
            continue
        if not in_fence and line.startswith("### "):
            if not sections:
                raise IssueFileError(f"{path}:{number_}: an item (###) before any section (##)")
            item = _ItemDraft(_line(line[4:], f"{path}:{number_}: item title"), number_)
            sections[-1][2].append(item)
            in_meta = True
            continue
        if item is None:
            if line.strip():
                raise IssueFileError(
                    f"{path}:{number_}: text outside an item; start an item with '### Title'"
                )
            continue
        meta = _META.match(line) if in_meta else None
        if meta:
            key = meta.group(1).lower()
            if key in item.meta:
                raise IssueFileError(f"{path}:{number_}: {meta.group(1)} given twice")
            item.meta[key] = meta.group(2).strip()
            continue
        in_meta = False
        item.body.append(line)
    if in_fence:
        raise IssueFileError(f"{path}: a code block (```) is never closed")
    return IssueDocument(
        publication=publication,
        number=number,
        subject=_line(front.get("subject"), f"{path}: subject", max_length=200),
        preheader=_line(front.get("preheader"), f"{path}: preheader", required=False),
        slot_at=parse_slot(front.get("slot"), zone, f"{path}: slot"),
        sections=tuple(
            SectionContent(heading, tuple(draft.build(path) for draft in drafts))
            for heading, _, drafts in sections
        ),
        sponsor=sponsor,
    )


def read(path: Path, zone: ZoneInfo) -> IssueDocument:
    """Read an issue file (see :func:`parse`).

    :raises IssueFileError: the file cannot be read or is malformed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IssueFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IssueFileError(f"{path}: cannot read: {exc}") from None
    return parse(text, zone, str(path))


def dump(document: IssueDocument, zone: ZoneInfo) -> str:
    """The file text for ``document``, its slot in ``zone``; :func:`parse` reads it back."""
    front: dict[str, Any] = {
        "publication": document.publication.value,
        "number": document.number,
        "subject": document.subject,
        "preheader": document.preheader,
        "slot": document.slot_at.astimezone(zone).isoformat() if document.slot_at else "",
    }
    if document.sponsor is not None:
        front["sponsor"] = {
            key: value for key, value in document.sponsor.__dict__.items() if value is not None
        }
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---"]
    for section in document.sections:
        lines += ["", f"## {section.heading}"]
        for item in section.items:
            lines += ["", f"### {item.title}"]
            if item.link:
                lines.append(f"Link: {item.link}")
            if item.image:
                lines.append(f"Image: {item.image.url}")
                if item.image.alt:
                    lines.append(f"Image-Alt: {item.image.alt}")
                if item.image.width and item.image.height:
                    lines.append(f"Image-Size: {item.image.width}x{item.image.height}")
            if item.contribution is not None:
                lines.append(f"Contribution: {item.contribution}")
            if item.body:
                lines += ["", item.body]
    return "\n".join(lines) + "\n"


def skeleton(
    publication: Publication, number: str, slot_at: datetime | None, zone: ZoneInfo
) -> str:
    """A ready-to-edit file for a new issue (its placeholders are lint errors)."""
    return dump(content.skeleton(publication, number, slot_at), zone)
