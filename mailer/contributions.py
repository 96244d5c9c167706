"""Contributions from LEPs: what a LEP contact sends in through their bulletin's signed link,
queued for staff, accepted into the next bulletin (or the events diary) or declined, and
the emails that tell its sender (a receipt, a decline's reason, the issue that carries it).

Who may contribute is the firewall's rule (:func:`mailer.audiences.receivable`): a
contact who may receive the internal bulletin, and is active. Every front end (the
public form, the console, the command line, the daemon) calls these functions.

Errors::

    ContributionError          a contribution cannot be found, made or decided
     +-- NotAContributor       the link is valid, but its contact may not contribute
     +-- ContributionInvalid   fields are refused (``errors``: a message per field)
     +-- TooManyContributions  the contact's daily limit is reached
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import (
    audiences,
    audit,
    calendar,
    clock,
    content,
    editorial,
    events,
    issues,
    media,
    staff,
)
from mailer.content import ImageContent, IssueDocument, ItemContent, SectionContent
from mailer.db import get_by_id, rowcount
from mailer.events import EventError
from mailer.markup import item_body, single_line
from mailer.models import (
    AuditEntry,
    Contact,
    ContactStatus,
    Contribution,
    ContributionKind,
    ContributionStatus,
    Event,
    EventAudience,
    Issue,
    IssueStatus,
    Item,
    Organisation,
    Publication,
    Section,
    Slot,
    SlotStatus,
)
from mailer.settings import Config, ContributionSettings, Settings
from mailer.subscriptions import READER, reader
from mailer.tokens import TokenSigner
from mailer.transports import Transport, TransportError

log = logging.getLogger(__name__)

# The bulletin's section each kind goes to: the first heading is the one a new section
# gets; any of them (or a heading starting with one) is a match.
SECTIONS: dict[ContributionKind, tuple[str, ...]] = {
    ContributionKind.LEP_NEWS: ("LEP news",),
    ContributionKind.BEST_PRACTICE: ("Best practice", "Sharing best practice"),
    ContributionKind.FUNDING_POLICY: (
        "Funding and policy updates",
        "Updates from government",
        "Funding and policy",
        "Policy updates",
    ),
}
RECEIPTS_FOR = timedelta(days=7)
LINK_CHARS = 1000  # as an item's link  # a receipt not sent by then is not sent at all
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class ContributionError(Exception):
    """A contribution cannot be found, made or decided."""


class NotAContributor(ContributionError):
    """The link is valid, but its contact may not send contributions."""


class ContributionInvalid(ContributionError):
    """Some fields are refused; ``errors`` holds a message for each, by field name."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class TooManyContributions(ContributionError):
    """The contact has sent as many contributions as a day allows."""


@dataclass(frozen=True)
class Contributor:
    """Who a contribute link names: a LEP contact who may receive the bulletin."""

    contact: Contact
    organisation: Organisation
    via_issue_id: int | None


def contributor(session: Session, signer: TokenSigner, token: str) -> Contributor:
    """The contact a contribute link names, if they may contribute.

    :raises LinkError: the token is forged, altered or names nobody.
    :raises NotAContributor: the contact may not receive the internal bulletin (the
        firewall's predicate), or is not active.
    """
    who = reader(session, signer, token)
    organisation = session.get(Organisation, who.contact.organisation_id)
    if (
        organisation is None
        or Publication.BULLETIN not in who.offered
        or who.contact.status is not ContactStatus.ACTIVE
    ):
        raise NotAContributor(
            "only contacts of Local Enterprise Partnerships send news for the bulletin"
        )
    return Contributor(who.contact, organisation, who.issue.id if who.issue else None)


@dataclass(frozen=True)
class Fields:
    """The form as typed (every value a string, as it came in)."""

    kind: str = ""
    headline: str = ""
    text: str = ""
    link: str = ""
    image_alt: str = ""
    event_date: str = ""
    event_time: str = ""
    event_place: str = ""


@dataclass(frozen=True)
class Checked:
    """A contribution's fields, checked."""

    kind: ContributionKind
    headline: str
    text: str
    link: str | None
    image_alt: str | None
    event_on: date | None
    event_time: str | None
    event_place: str | None


def check(fields: Fields, limits: ContributionSettings, *, has_image: bool, today: date) -> Checked:
    """Check what a contributor typed: the same rules as an issue's items (one-line
    headline, Markdown text an issue file can hold, https links), the length limits,
    an image's description, and for an event its date (not past), time and place.

    :raises ContributionInvalid: with a message for each refused field.
    """
    errors: dict[str, str] = {}

    def line(name: str, value: str, label: str, max_length: int, required: bool = True) -> str:
        try:
            return single_line(value, label, max_length=max_length, required=required)
        except ValueError as exc:
            errors[name] = str(exc)
            return ""

    kind = next((k for k in ContributionKind if k.value == fields.kind), None)
    if kind is None:
        errors["kind"] = "Kind: choose what you are sending (LEP news, best practice, ...)"
    headline = line("headline", fields.headline, "Headline", limits.headline_chars)
    text = ""
    if not fields.text.strip():
        errors["text"] = "Text: must not be empty"
    elif len(fields.text) > limits.text_chars:
        errors["text"] = (
            f"Text: {len(fields.text)} characters is longer than {limits.text_chars}: "
            "shorten it, or link to the full story"
        )
    elif any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in fields.text):
        errors["text"] = "Text: a control character (a NUL byte, say) is not allowed"
    else:
        try:
            text = item_body(fields.text)
        except ValueError as exc:
            errors["text"] = str(exc)
    link = None
    try:
        link = events.check_link(fields.link, "Link")
    except EventError as exc:
        errors["link"] = str(exc).replace("expected an https address", "give an https:// address")
    if link is not None and len(link) > LINK_CHARS:
        errors["link"] = f"Link: longer than {LINK_CHARS} characters: link to a shorter address"
        link = None
    image_alt = line("image_alt", fields.image_alt, "Image description", 300, required=has_image)
    event_on = event_time = event_place = None
    if kind is ContributionKind.EVENT:
        try:
            event_on = date.fromisoformat(fields.event_date.strip())
        except ValueError:
            errors["event_date"] = (
                "Date: give the day of the event, like 2027-03-10"
                if fields.event_date.strip()
                else "Date: an event needs its date"
            )
        if event_on is not None and event_on < today:
            errors["event_date"] = f"Date: {event_on:%d %B %Y} has passed"
        time = fields.event_time.strip()
        if time and not _TIME.fullmatch(time):
            errors["event_time"] = "Time: give the start time like 14:00, or leave it empty"
        event_time = time or None
        event_place = line("event_place", fields.event_place, "Place", 200) or None
    if errors:
        raise ContributionInvalid(errors)
    assert kind is not None
    return Checked(
        kind=kind,
        headline=headline,
        text=text,
        link=link,
        image_alt=image_alt or None,
        event_on=event_on,
        event_time=event_time,
        event_place=event_place,
    )


@dataclass(frozen=True)
class Upload:
    """An image sent with a contribution: its bytes and the name it had."""

    data: bytes
    filename: str


def submit(
    session: Session,
    who: Contributor,
    checked: Checked,
    *,
    image: Upload | None,
    settings: Settings,
    media_folder: Path,
) -> Contribution:
    """Record a contribution (its image into the media library, checked and re-encoded
    there) and audit it. The caller commits.

    :raises TooManyContributions: the contact sent ``[contributions] per_day`` already.
    :raises ContributionInvalid: the image is refused (``errors["image"]``).
    """
    contact_id = who.contact.id
    assert contact_id is not None and who.organisation.id is not None
    # One writer per contact from here to the commit (a row lock on PostgreSQL, the write
    # lock on SQLite): two submissions at once cannot both pass the count.
    session.execute(
        sa.update(Contact)
        .where(col(Contact.id) == contact_id)
        .values(updated_at=col(Contact.updated_at))
    )
    now = clock.now()
    limit = settings.contributions.per_day
    today = session.exec(
        select(sa.func.count())
        .select_from(Contribution)
        .where(
            col(Contribution.contact_id) == contact_id,
            col(Contribution.created_at) > now - timedelta(days=1),
        )
    ).one()
    if today >= limit:
        raise TooManyContributions(
            f"you have sent {today} contributions in the last 24 hours, as many as a day "
            f"allows: please send the next one tomorrow, or email {settings.network.contact_email}"
        )
    coming = _next_bulletin(session, now)  # the daemon plans the calendar ahead
    row = Contribution(
        next_slot_at=coming.send_at if coming else None,
        deadline_at=coming.deadline_at if coming else None,
        contact_id=contact_id,
        organisation_id=who.organisation.id,
        via_issue_id=who.via_issue_id,
        kind=checked.kind,
        headline=checked.headline,
        body=checked.text,
        link=checked.link,
        image_alt=checked.image_alt if image is not None else None,
        event_on=checked.event_on,
        event_time=checked.event_time,
        event_place=checked.event_place,
    )
    session.add(row)
    session.flush()
    if image is not None:
        try:
            stored, _ = media.store(
                session,
                image.data,
                filename=image.filename,
                alt=checked.image_alt or "",
                uploaded_by=f"contribution {row.id}",
                folder=media_folder,
                limit=settings.web.image_limit_mb * 1024 * 1024,
            )
        except media.MediaError as exc:
            raise ContributionInvalid({"image": f"Image: {exc}"}) from None
        row.image_name = stored.name
    audit.record(
        session,
        READER,
        "contribution:submit",
        f"contribution {row.id}",
        f"{checked.kind.label} from {who.organisation.name}: {checked.headline}",
    )
    session.flush()
    return row


def get(session: Session, contribution_id: int) -> Contribution:
    """:raises ContributionError: there is no such contribution."""
    row = get_by_id(session, Contribution, contribution_id)
    if row is None:
        raise ContributionError(
            f"there is no contribution {contribution_id} (see `mailer contributions list`)"
        )
    return row


# -- where it goes -------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """The bulletin a contribution is proposed for: the next one if it arrived before
    that one's content deadline, else the one after (the first still open to edits)."""

    in_time: bool
    deadline: datetime | None  # the content deadline of the next bulletin on arrival
    slot: Slot | None  # None: no open bulletin slot is planned
    issue: Issue | None  # the slot's draft, if it has one yet


def _bulletin_slots(session: Session, after: datetime) -> list[Slot]:
    return list(
        session.exec(
            select(Slot)
            .where(
                col(Slot.publication) == Publication.BULLETIN,
                col(Slot.status) == SlotStatus.PLANNED,
                col(Slot.send_at) > after,
            )
            .order_by(col(Slot.send_at))
        ).all()
    )


def _open(session: Session, slot: Slot, now: datetime) -> Issue | Literal[False] | None:
    """The slot's draft (None: no issue yet), or False when it takes no more items."""
    if slot.send_at <= now:
        return False
    holder = calendar.issue_of(session, slot)
    if holder is not None and holder.status is not IssueStatus.DRAFT:
        return False
    return holder


def targets(session: Session, now: datetime, limit: int = 8) -> list[tuple[Slot, Issue | None]]:
    """Bulletin slots an item may still go into: planned, to come, with no issue yet or
    a draft (the soonest first)."""
    found: list[tuple[Slot, Issue | None]] = []
    for slot in _bulletin_slots(session, now):
        holder = _open(session, slot, now)
        if holder is not False:
            found.append((slot, holder if isinstance(holder, Issue) else None))
            if len(found) >= limit:
                break
    return found


def propose(
    session: Session, row: Contribution, now: datetime, slots: Sequence[Slot] | None = None
) -> Proposal:
    """Where ``row`` goes unless staff choose otherwise: the bulletin that was next when it
    arrived if it came before that one's content deadline, else the one after (the first
    of them still open to items). ``slots``: the planned bulletin slots, if already read."""
    in_time = row.deadline_at is None or row.created_at <= row.deadline_at
    after = row.next_slot_at or row.created_at
    upcoming = list(slots) if slots is not None else _bulletin_slots(session, row.created_at)
    for slot in upcoming:
        if slot.send_at < after or (not in_time and slot.send_at == after):
            continue
        holder = _open(session, slot, now)
        if holder is not False:
            return Proposal(in_time, row.deadline_at, slot, holder)
    return Proposal(in_time, row.deadline_at, None, None)


def _next_bulletin(session: Session, now: datetime) -> Slot | None:
    """The bulletin slot next to go out (planned, to come)."""
    return next(iter(_bulletin_slots(session, now)), None)


@dataclass(frozen=True)
class Entry:
    """A contribution as the queue shows it."""

    contribution: Contribution
    organisation: str
    contact_name: str
    proposal: Proposal
    event_id: int | None


def _entries(session: Session, rows: Sequence[Contribution], now: datetime) -> list[Entry]:
    if not rows:
        return []
    earliest = min(r.created_at for r in rows)
    slots = _bulletin_slots(session, earliest)
    names = dict(
        session.exec(
            select(Organisation.id, Organisation.name).where(
                col(Organisation.id).in_({r.organisation_id for r in rows})
            )
        ).all()
    )
    people = dict(
        session.exec(
            select(Contact.id, Contact.name).where(
                col(Contact.id).in_({r.contact_id for r in rows})
            )
        ).all()
    )
    diary = dict(
        session.exec(
            select(Event.contribution_id, Event.id).where(
                col(Event.contribution_id).in_([r.id for r in rows])
            )
        ).all()
    )
    return [
        Entry(
            row,
            names.get(row.organisation_id, "?"),
            people.get(row.contact_id, "?"),
            propose(session, row, now, slots)
            if row.status is ContributionStatus.RECEIVED
            else Proposal(True, None, None, None),
            diary.get(row.id),
        )
        for row in rows
    ]


def listing(
    session: Session, status: ContributionStatus | None = None, *, limit: int = 200
) -> list[Entry]:
    """The queue, newest first (only ``status`` if given)."""
    query = select(Contribution).order_by(
        col(Contribution.created_at).desc(), col(Contribution.id).desc()
    )
    if status is not None:
        query = query.where(col(Contribution.status) == status)
    return _entries(session, session.exec(query.limit(limit)).all(), clock.now())


def entry(session: Session, contribution_id: int) -> Entry:
    """One contribution as the queue shows it.

    :raises ContributionError: there is none.
    """
    return _entries(session, [get(session, contribution_id)], clock.now())[0]


def count_waiting(session: Session) -> int:
    """Contributions no one has decided yet."""
    return session.exec(
        select(sa.func.count())
        .select_from(Contribution)
        .where(col(Contribution.status) == ContributionStatus.RECEIVED)
    ).one()


# -- deciding ------------------------------------------------------------------------


def revise(session: Session, contribution_id: int, checked: Checked, *, by: str) -> Contribution:
    """Change what a contribution says before it is decided (staff tidy a headline or a
    text; its image stays, its description may change). Audited by ``by``; the caller
    commits.

    :raises ContributionError: no such contribution, or it is decided already (edit the
        item in its issue, or the event in the diary, instead).
    :raises StaffError: ``by`` names nobody.
    """
    row = get(session, contribution_id)
    who, _ = staff.identify(session, by)
    # Still undecided, and stays so until this commits (a decision waits for the lock).
    held = rowcount(
        session.execute(
            sa.update(Contribution)
            .where(
                col(Contribution.id) == contribution_id,
                col(Contribution.status) == ContributionStatus.RECEIVED,
            )
            .values(status=ContributionStatus.RECEIVED)
        )
    )
    if not held:
        session.refresh(row)
        raise ContributionError(
            f"contribution {row.id} is {row.status}: edit the item in its issue instead"
        )
    row.kind, row.headline, row.body, row.link = (
        checked.kind,
        checked.headline,
        checked.text,
        checked.link,
    )
    if row.image_name:
        row.image_alt = checked.image_alt
    row.event_on, row.event_time, row.event_place = (
        checked.event_on,
        checked.event_time,
        checked.event_place,
    )
    session.add(row)
    session.flush()
    audit.record(session, who, "contribution:edit", f"contribution {row.id}", row.headline)
    return row


@dataclass(frozen=True)
class Accepted:
    """Where an accepted contribution went: an issue's draft, or the events diary."""

    contribution: Contribution
    issue: Issue | None
    event: Event | None
    note: str


def _matches(heading: str, kind: ContributionKind) -> bool:
    words = " ".join(heading.casefold().split())
    return any(words.startswith(name.casefold()) for name in SECTIONS[kind])


def place(document: IssueDocument, kind: ContributionKind, item: ItemContent) -> IssueDocument:
    """``document`` with ``item`` at the end of the section for ``kind`` (taking the
    place of the skeleton's placeholder items there), or in a new section at the end."""
    placeholders = {t.casefold() for t in content.ITEM_PLACEHOLDERS}
    sections = list(document.sections)
    at = next((i for i, s in enumerate(sections) if _matches(s.heading, kind)), None)
    if at is None:
        sections.append(SectionContent(SECTIONS[kind][0], (item,)))
    else:
        kept = tuple(i for i in sections[at].items if i.title.casefold() not in placeholders)
        sections[at] = dataclasses.replace(sections[at], items=(*kept, item))
    return dataclasses.replace(document, sections=tuple(sections))


def _item(session: Session, row: Contribution, settings: Settings) -> tuple[ItemContent, str]:
    organisation = session.get(Organisation, row.organisation_id)
    body = row.body
    if organisation is not None:
        body = f"{body}\n\n*From {organisation.name}*"
    image, note = None, ""
    if row.image_name:
        stored = media.by_name(session, row.image_name)
        if stored is None:
            note = "; its image is no longer in the media library"
        elif not settings.web.root.startswith("https://"):
            note = "; its image was left out (the site is not https: issues take https images)"
        else:
            image = ImageContent(
                media.url(settings.web.root, stored.name),
                row.image_alt or stored.alt,
                stored.width,
                stored.height,
            )
    return ItemContent(row.headline, body, row.link, image, contribution=row.id), note


def _target(
    session: Session,
    row: Contribution,
    now: datetime,
    settings: Settings,
    *,
    slot_id: int | None,
    into: str | None,
) -> Slot:
    """The bulletin slot an item is accepted into: the one chosen (by id or number), else
    the proposed one.

    :raises ContributionError: the one chosen is not open, or none is.
    """
    year = now.astimezone(settings.calendar.zone).year
    for planned in (year, year + 1, *((int(into[:4]),) if into and into[:4].isdigit() else ())):
        calendar.ensure_year(session, planned, settings)
    if slot_id is None and not into:
        proposal = propose(session, row, now)
        if proposal.slot is None:
            raise ContributionError(
                "there is no open bulletin slot to put it in: plan one "
                "(`mailer calendar add bulletin WHEN`)"
            )
        return proposal.slot
    open_slots = [slot for slot, _ in targets(session, now, limit=100)]
    chosen = next((s for s in open_slots if s.id == slot_id or (into and s.number == into)), None)
    if chosen is None:
        asked = f"bulletin {into}" if into else f"slot {slot_id}"
        raise ContributionError(
            f"{asked} is not an open bulletin slot: choose one of "
            + (", ".join(s.number for s in open_slots[:6]) or "none (plan one first)")
        )
    return chosen


def _undecided(session: Session, row: Contribution, status: ContributionStatus) -> None:
    """Take the decision on ``row``: only one of two staff deciding at once gets it (the
    other waits for the row's lock, then finds it decided).

    :raises ContributionError: it is decided already.
    """
    if row.status is ContributionStatus.RECEIVED:
        taken = rowcount(
            session.execute(
                sa.update(Contribution)
                .where(
                    col(Contribution.id) == row.id,
                    col(Contribution.status) == ContributionStatus.RECEIVED,
                )
                .values(status=status)
            )
        )
        if taken:
            row.status = status
            return
        session.refresh(row)
    raise ContributionError(
        f"contribution {row.id} was already {row.status} by {row.decided_by or '?'}"
    )


def accept(
    session: Session,
    contribution_id: int,
    *,
    by: str,
    settings: Settings,
    slot_id: int | None = None,
    into: str | None = None,
) -> Accepted:
    """Accept a contribution: an event into the events diary (for the bulletin), anything
    else as an item at the end of its section in the draft of the proposed bulletin (or of
    the slot ``slot_id``, or of bulletin number ``into``), the draft made from the skeleton
    if the slot has none. Staff edit it there like any item. Audited by ``by``; the caller
    commits.

    :raises ContributionError: no such contribution, already decided, no open bulletin
        slot (or the one chosen is not), or the event is already in the diary.
    :raises StaffError: ``by`` names nobody.
    """
    row = get(session, contribution_id)
    who, _ = staff.identify(session, by)
    _undecided(session, row, ContributionStatus.ACCEPTED)
    now = clock.now()
    issue: Issue | None = None
    event: Event | None = None
    if row.kind is ContributionKind.EVENT:
        assert row.event_on is not None
        place_text = ", ".join(p for p in (row.event_time, row.event_place) if p)
        try:
            event = events.add(
                session,
                row.event_on,
                row.headline,
                location=place_text,
                link=row.link,
                audience=EventAudience.INTERNAL,
            )
        except EventError as exc:
            raise ContributionError(f"contribution {row.id}: {exc}") from None
        event.contribution_id = row.id
        note = f"added to the events diary for {row.event_on:%d %B %Y}"
    else:
        slot = _target(session, row, now, settings, slot_id=slot_id, into=into)
        # One accept at a time into a slot (a row lock, or SQLite's write lock): two at
        # once must not both make its draft.
        session.execute(
            sa.update(Slot).where(col(Slot.id) == slot.id).values(updated_at=col(Slot.updated_at))
        )
        holder = _open(session, slot, now)
        if holder is False:
            raise ContributionError(
                f"bulletin {slot.number} takes no more items now (it was approved or sent): "
                "choose another"
            )
        document = (
            issues.document(session, holder)
            if holder is not None
            else editorial.new_draft(
                session, Publication.BULLETIN, slot_at=slot.send_at, settings=settings
            )
        )
        item, extra = _item(session, row, settings)
        issue = editorial.save(
            session,
            place(document, row.kind, item),
            editor=who,
            settings=settings,
            issue_id=holder.id if holder is not None else None,
        )
        row.issue_id = issue.id
        heading = next(
            (s.heading for s in document.sections if _matches(s.heading, row.kind)),
            SECTIONS[row.kind][0],
        )
        note = f"placed in '{heading}' of bulletin {issue.number} (issue {issue.id}){extra}"
    row.status = ContributionStatus.ACCEPTED
    row.decided_by, row.decided_at = who, now
    session.add(row)
    session.flush()
    audit.record(session, who, "contribution:accept", f"contribution {row.id}", note)
    return Accepted(row, issue, event, note)


def decline(session: Session, contribution_id: int, *, reason: str, by: str) -> Contribution:
    """Decline a contribution with a short reason, emailed to its sender (by
    :func:`send_notices`). Audited by ``by``; the caller commits.

    :raises ContributionError: no such contribution, or already decided.
    :raises ContributionInvalid: the reason is empty, too long or holds a line break.
    :raises StaffError: ``by`` names nobody.
    """
    row = get(session, contribution_id)
    try:
        text = single_line(reason, "Reason", max_length=500)
    except ValueError as exc:
        raise ContributionInvalid({"reason": str(exc)}) from None
    who, _ = staff.identify(session, by)
    _undecided(session, row, ContributionStatus.DECLINED)
    row.status = ContributionStatus.DECLINED
    row.decline_reason = text
    row.decided_by, row.decided_at = who, clock.now()
    session.add(row)
    session.flush()
    audit.record(session, who, "contribution:decline", f"contribution {row.id}", text)
    return row


# -- telling the sender --------------------------------------------------------------


class NoticeKind:
    RECEIPT = "receipt"
    DECLINED = "declined"
    CREDIT = "credit"


_SENT_COLUMN = {
    NoticeKind.RECEIPT: "receipt_sent_at",
    NoticeKind.DECLINED: "decision_sent_at",
    NoticeKind.CREDIT: "credit_sent_at",
}


@dataclass(frozen=True)
class Due:
    """One email owed to a contributor, about one or more of their contributions (plain
    values: it outlives the session that found it)."""

    kind: str
    ids: tuple[int, ...]
    contact_id: int
    name: str
    email: str
    headlines: tuple[str, ...]
    writable: bool  # the contact is active and, for a credit, may read the bulletin
    issue_id: int | None = None  # a credit: the sent issue carrying them
    issue_number: str = ""
    slot_at: datetime | None = None  # a receipt: the bulletin it is proposed for
    in_time: bool = False
    reason: str = ""  # a decline


def _carried(session: Session) -> list[tuple[Contribution, Issue]]:
    """Accepted contributions not yet credited, with the sent bulletin that carries each:
    its item's, or for an event the first bulletin approved (its diary frozen) after the
    event was accepted whose diary holds it."""
    found: list[tuple[Contribution, Issue]] = [
        (row, issue)
        for row, issue in session.exec(
            select(Contribution, Issue)
            .join(Item, col(Item.contribution_id) == col(Contribution.id))
            .join(Section, col(Section.id) == col(Item.section_id))
            .join(Issue, col(Issue.id) == col(Section.issue_id))
            .where(
                col(Contribution.status) == ContributionStatus.ACCEPTED,
                col(Contribution.credit_sent_at).is_(None),
                col(Issue.status) == IssueStatus.SENT,
                col(Issue.publication) == Publication.BULLETIN,
            )
            .order_by(col(Contribution.id), col(Issue.id))
        ).all()
    ]
    waiting = session.exec(
        select(Contribution, Event)
        .join(Event, col(Event.contribution_id) == col(Contribution.id))
        .where(
            col(Contribution.status) == ContributionStatus.ACCEPTED,
            col(Contribution.credit_sent_at).is_(None),
        )
    ).all()
    for row, event in waiting:
        assert row.decided_at is not None
        sent = session.exec(
            select(Issue)
            .where(
                col(Issue.publication) == Publication.BULLETIN,
                col(Issue.status) == IssueStatus.SENT,
                col(Issue.approved_at) > row.decided_at,
            )
            .order_by(col(Issue.send_started_at))
        ).all()
        for issue in sent:
            day = (issue.slot_at or issue.send_started_at or row.decided_at).date()
            if day <= event.starts_on < day + events.WINDOW:
                found.append((row, issue))
                break
    return found


def due(session: Session, *, only: int | None = None) -> list[Due]:
    """The emails owed to contributors (or only about contribution ``only``): receipts of
    the last week, declines, and one credit per contributor and sent bulletin."""
    now = clock.now()
    owed: list[Due] = []
    people: dict[int, tuple[Contact, bool] | None] = {}

    def person(contact_id: int) -> tuple[Contact, bool] | None:
        """The contact, and whether the firewall lets them read the bulletin."""
        if contact_id not in people:
            found = session.exec(
                select(Contact, Organisation)
                .join(Organisation, col(Organisation.id) == col(Contact.organisation_id))
                .where(col(Contact.id) == contact_id)
            ).first()
            people[contact_id] = (
                (found[0], audiences.may_receive(found[1].kind, Publication.BULLETIN))
                if found is not None
                else None
            )
        return people[contact_id]

    def active(contact: Contact) -> bool:
        return contact.status is ContactStatus.ACTIVE

    receipts = select(Contribution).where(
        col(Contribution.receipt_sent_at).is_(None),
        col(Contribution.created_at) > now - RECEIPTS_FOR,
    )
    declined = select(Contribution).where(
        col(Contribution.status) == ContributionStatus.DECLINED,
        col(Contribution.decision_sent_at).is_(None),
    )
    if only is not None:
        receipts = receipts.where(col(Contribution.id) == only)
        declined = declined.where(col(Contribution.id) == only)
    for row in session.exec(receipts.order_by(col(Contribution.id))).all():
        found = person(row.contact_id)
        if found is not None and row.id is not None:
            proposal = propose(session, row, now)
            owed.append(
                Due(
                    NoticeKind.RECEIPT,
                    (row.id,),
                    row.contact_id,
                    found[0].name,
                    found[0].email,
                    (row.headline,),
                    active(found[0]),
                    slot_at=proposal.slot.send_at if proposal.slot else None,
                    in_time=proposal.in_time,
                )
            )
    for row in session.exec(declined.order_by(col(Contribution.id))).all():
        found = person(row.contact_id)
        if found is not None and row.id is not None:
            owed.append(
                Due(
                    NoticeKind.DECLINED,
                    (row.id,),
                    row.contact_id,
                    found[0].name,
                    found[0].email,
                    (row.headline,),
                    active(found[0]),
                    reason=row.decline_reason or "",
                )
            )
    grouped: dict[tuple[int, int], dict[int, Contribution]] = {}
    numbers: dict[int, str] = {}
    for row, issue in _carried(session):
        if (only is not None and row.id != only) or row.id is None or issue.id is None:
            continue
        numbers[issue.id] = issue.number
        carried = grouped.setdefault((row.contact_id, issue.id), {})
        carried.setdefault(row.id, row)  # an item twice in one issue is credited once
    credited: set[int] = set()
    for (contact_id, issue_id), rows in grouped.items():
        fresh = {i: r for i, r in rows.items() if i not in credited}  # once, in one issue
        found = person(contact_id)
        if found is None or not fresh:
            continue
        credited.update(fresh)
        owed.append(
            Due(
                NoticeKind.CREDIT,
                tuple(fresh),
                contact_id,
                found[0].name,
                found[0].email,
                tuple(r.headline for r in fresh.values()),
                active(found[0]) and found[1],
                issue_id=issue_id,
                issue_number=numbers[issue_id],
            )
        )
    return owed


def claim(session: Session, owed: Due) -> bool:
    """Mark an email as sent before it is sent (so two processes never both send it);
    False when another process claimed it first. The caller commits."""
    column = getattr(Contribution, _SENT_COLUMN[owed.kind])
    taken = rowcount(
        session.execute(
            sa.update(Contribution)
            .where(col(Contribution.id).in_(owed.ids), column.is_(None))
            .values({_SENT_COLUMN[owed.kind]: clock.now()})
        )
    )
    return taken == len(owed.ids)


def release(session: Session, owed: Due) -> None:
    """Forget a claim whose email did not go, so it is tried again. The caller commits."""
    session.execute(
        sa.update(Contribution)
        .where(col(Contribution.id).in_(owed.ids))
        .values({_SENT_COLUMN[owed.kind]: None})
    )


async def send_notices(
    engine: Engine,
    config: Config,
    signer: TokenSigner,
    new_transport: Callable[[], Transport],
    *,
    only: int | None = None,
) -> int:
    """Send the emails owed to contributors (:func:`due`), each claimed first (in its own
    transaction) and released when the relay could not take it for now (a 4xx, or no
    connection: the daemon tries again at its next tick). A permanent refusal (5xx) or a
    lost reply is not tried again; a contact no longer active, or a credit to a contact
    the firewall keeps from the bulletin, is not written to. Returns how many went."""
    from mailer.notices import Notices, send_one

    def claimed() -> list[Due]:
        with Session(engine) as session:
            owed = due(session, only=only)
        taken = []
        for item in owed:
            with Session(engine) as session:
                if claim(session, item):
                    session.commit()
                    taken.append(item)
        return taken

    def undo(owed: Due) -> None:
        with Session(engine) as session:
            release(session, owed)
            session.commit()

    builder = Notices(config)
    sent = 0
    for owed in await asyncio.to_thread(claimed):
        what = f"contribution {owed.kind} email (contributions {list(owed.ids)})"
        if not owed.writable:
            log.info("not sending the %s: the contact may not receive it now", what)
            continue
        try:
            reply = await send_one(
                new_transport(), config, builder.contribution(owed, signer), [owed.email]
            )
        except TransportError as exc:
            log.error("could not send the %s: %s", what, exc)
            await asyncio.to_thread(undo, owed)
            continue
        except Exception:
            log.exception("could not send the %s", what)
            await asyncio.to_thread(undo, owed)
            continue
        if reply.ok:
            sent += 1
            log.info("sent the %s", what)
        elif reply.unknown or reply.code >= 500:
            log.warning(
                "the relay refused the %s for good (%s %s): not tried again",
                what,
                reply.code,
                reply.message,
            )
        else:
            log.error("the relay put off the %s: %s %s", what, reply.code, reply.message)
            await asyncio.to_thread(undo, owed)
    return sent


# -- data protection -----------------------------------------------------------------


def of_contact(session: Session, contact_id: int) -> list[Contribution]:
    """Everything a contact sent in, oldest first (for the subject access export)."""
    return list(
        session.exec(
            select(Contribution)
            .where(col(Contribution.contact_id) == contact_id)
            .order_by(col(Contribution.id))
        ).all()
    )


def forget_contact(session: Session, contact_id: int) -> tuple[int, list[str]]:
    """Delete a contact's contributions (erasure). Items and events made from them stay,
    linked to no one; an image only they sent that no item uses goes from the library.
    Returns how many were deleted and the names of the library files to delete once the
    caller has committed."""
    rows = of_contact(session, contact_id)
    ids = [r.id for r in rows]
    if not ids:
        return 0, []
    session.execute(
        sa.update(Item).where(col(Item.contribution_id).in_(ids)).values(contribution_id=None)
    )
    session.execute(
        sa.update(Event).where(col(Event.contribution_id).in_(ids)).values(contribution_id=None)
    )
    names: list[str] = []
    for row in rows:
        stored = media.by_name(session, row.image_name) if row.image_name else None
        if stored is None or stored.uploaded_by != f"contribution {row.id}":
            continue
        # The name the file had on their computer may say who they are.
        stored.original_name = ""
        session.execute(
            sa.update(AuditEntry)
            .where(
                col(AuditEntry.actor) == stored.uploaded_by,
                col(AuditEntry.action) == "media:upload",
            )
            .values(detail=f"{stored.width}x{stored.height}")
        )
        used = session.exec(
            select(sa.func.count())
            .select_from(Item)
            .where(col(Item.image_url).endswith(f"/{stored.name}"))
        ).one()
        if not used:
            session.delete(stored)
            names.append(stored.name)
    session.execute(sa.delete(Contribution).where(col(Contribution.id).in_(ids)))
    return len(ids), names
