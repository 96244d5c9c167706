"""Issues: composed from issue files, moved through their statuses, frozen when approved.

Status moves draft -> approved -> scheduled -> sending -> sent, or to cancelled (and a
scheduled issue the calendar could not send becomes missed). Approving renders the issue
once and keeps that rendering: from then on neither content nor rendering change.

Errors::

    IssueError         an issue cannot be found, stored or changed
    +-- IssueStateError  the issue's status does not allow the change
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clicks, clock, events
from mailer.content import (
    EventContent,
    ImageContent,
    IssueContent,
    IssueDocument,
    ItemContent,
    SectionContent,
    SponsorContent,
)
from mailer.db import get_by_id
from mailer.models import (
    Contribution,
    ContributionKind,
    ContributionStatus,
    Issue,
    IssueStatus,
    Item,
    Publication,
    Section,
)
from mailer.publications import PublicationDefinition
from mailer.rendering import RenderedIssue, Renderer, Slots

TRANSITIONS: dict[IssueStatus, frozenset[IssueStatus]] = {
    IssueStatus.DRAFT: frozenset({IssueStatus.APPROVED, IssueStatus.CANCELLED}),
    IssueStatus.APPROVED: frozenset(
        {
            IssueStatus.DRAFT,
            IssueStatus.SCHEDULED,
            IssueStatus.SENDING,
            IssueStatus.CANCELLED,
            IssueStatus.MISSED,
        }
    ),
    IssueStatus.SCHEDULED: frozenset(
        {IssueStatus.APPROVED, IssueStatus.SENDING, IssueStatus.CANCELLED, IssueStatus.MISSED}
    ),
    IssueStatus.SENDING: frozenset({IssueStatus.SENT}),
    IssueStatus.SENT: frozenset(),
    IssueStatus.MISSED: frozenset({IssueStatus.DRAFT}),
    IssueStatus.CANCELLED: frozenset(),
}
FROZEN = frozenset(
    {IssueStatus.APPROVED, IssueStatus.SCHEDULED, IssueStatus.SENDING, IssueStatus.SENT}
)


class IssueError(Exception):
    """An issue cannot be found, stored or changed."""


class IssueStateError(IssueError):
    """The issue's status does not allow this."""


def get(session: Session, issue_id: int) -> Issue:
    """The issue with this id.

    :raises IssueError: there is none.
    """
    issue = get_by_id(session, Issue, issue_id)
    if issue is None:
        raise IssueError(f"there is no issue {issue_id} (see `mailer issue list`)")
    return issue


def listing(
    session: Session, publication: Publication | None = None, status: IssueStatus | None = None
) -> Sequence[Issue]:
    """Issues, newest slot first (unplanned ones last)."""
    query = select(Issue).order_by(
        col(Issue.slot_at).is_(None), col(Issue.slot_at).desc(), col(Issue.id).desc()
    )
    if publication is not None:
        query = query.where(col(Issue.publication) == publication)
    if status is not None:
        query = query.where(col(Issue.status) == status)
    return session.exec(query).all()


def next_number(session: Session, publication: Publication, year: int) -> str:
    """The next free number of ``publication`` in ``year``: '2027/05'."""
    prefix = f"{year}/"
    taken = session.exec(
        select(Issue.number).where(
            col(Issue.publication) == publication, col(Issue.number).startswith(prefix)
        )
    ).all()
    highest = max((int(n.removeprefix(prefix)) for n in taken if n[5:].isdigit()), default=0)
    return f"{prefix}{highest + 1:02d}"


def transition(session: Session, issue: Issue, status: IssueStatus) -> Issue:
    """Move an issue to ``status`` if its current status allows it.

    :raises IssueStateError: the move is not allowed.
    """
    if status not in TRANSITIONS[issue.status]:
        allowed = ", ".join(sorted(TRANSITIONS[issue.status])) or "nothing"
        raise IssueStateError(
            f"issue {issue.id} is {issue.status}: it cannot become {status} "
            f"(from {issue.status} it can become: {allowed})"
        )
    issue.status = status
    issue.updated_at = clock.now()
    session.add(issue)
    session.flush()
    return issue


def _store_content(session: Session, issue: Issue, document: IssueDocument) -> None:
    assert issue.id is not None
    section_ids = select(Section.id).where(col(Section.issue_id) == issue.id)
    session.execute(sa.delete(Item).where(col(Item.section_id).in_(section_ids)))
    session.execute(sa.delete(Section).where(col(Section.issue_id) == issue.id))
    for position, section in enumerate(document.sections):
        row = Section(issue_id=issue.id, position=position, heading=section.heading)
        session.add(row)
        session.flush()
        assert row.id is not None
        for item_position, item in enumerate(section.items):
            session.add(
                Item(
                    section_id=row.id,
                    position=item_position,
                    title=item.title,
                    body=item.body,
                    link=item.link,
                    image_url=item.image.url if item.image else None,
                    image_alt=item.image.alt if item.image else None,
                    image_width=item.image.width if item.image else None,
                    image_height=item.image.height if item.image else None,
                    contribution_id=item.contribution,
                )
            )
    sponsor = document.sponsor
    issue.sponsor_name = sponsor.name if sponsor else None
    issue.sponsor_link = sponsor.link if sponsor else None
    issue.sponsor_blurb = sponsor.blurb if sponsor else None
    issue.sponsor_logo = sponsor.logo if sponsor else None
    issue.sponsor_logo_alt = sponsor.logo_alt if sponsor else None
    session.flush()


def _linked(session: Session, document: IssueDocument, issue_id: int | None) -> IssueDocument:
    """``document`` with its items' links to LEP contributions checked: only a bulletin's
    item may name one, and only an accepted contribution (not an event: those go to the
    diary) that was accepted into this issue (or one since cancelled). A number no
    contribution has any more (erased) is dropped: the item stays, linked to no one.

    :raises IssueError: a link breaks these rules (named by the contribution's number).
    """
    named = {
        item.contribution
        for section in document.sections
        for item in section.items
        if item.contribution is not None
    }
    if not named:
        return document
    if not document.publication.internal:
        raise IssueError(
            "Contribution: only the bulletin carries LEP contributions; take the "
            "Contribution: line out of the newsletter's item"
        )
    rows = {
        row.id: row
        for row in session.exec(select(Contribution).where(col(Contribution.id).in_(named)))
    }
    for number in sorted(named & set(rows)):
        row = rows[number]
        if row.status is not ContributionStatus.ACCEPTED or row.kind is ContributionKind.EVENT:
            raise IssueError(
                f"Contribution: contribution {number} is "
                f"{'an event' if row.kind is ContributionKind.EVENT else row.status}: only an "
                "accepted contribution's item may name it"
            )
        if row.issue_id not in (None, issue_id):
            holder = session.get(Issue, row.issue_id)
            if holder is not None and holder.status is not IssueStatus.CANCELLED:
                raise IssueError(
                    f"Contribution: contribution {number} was accepted into issue "
                    f"{row.issue_id}: its item belongs there"
                )
    if named <= set(rows):
        return document
    return dataclasses.replace(
        document,
        sections=tuple(
            dataclasses.replace(
                section,
                items=tuple(
                    dataclasses.replace(item, contribution=None)
                    if item.contribution is not None and item.contribution not in rows
                    else item
                    for item in section.items
                ),
            )
            for section in document.sections
        ),
    )


def _follow(session: Session, document: IssueDocument, issue: Issue) -> None:
    """Contributions whose items moved here from a cancelled issue now belong here."""
    moved = [
        item.contribution
        for section in document.sections
        for item in section.items
        if item.contribution is not None
    ]
    if moved:
        session.execute(
            sa.update(Contribution)
            .where(col(Contribution.id).in_(moved), col(Contribution.issue_id).is_not(None))
            .values(issue_id=issue.id)
        )


def editable(session: Session, issue_id: int, publication: Publication) -> Issue:
    """The draft ``issue_id``, to be given new content of ``publication``.

    :raises IssueError: there is no such issue, or it is of another publication.
    :raises IssueStateError: it is not a draft.
    """
    issue = get(session, issue_id)
    if issue.status is not IssueStatus.DRAFT:
        raise IssueStateError(
            f"issue {issue_id} is {issue.status}: only a draft can be edited "
            "(`mailer issue reopen` makes an approved issue a draft again)"
        )
    if issue.publication != publication:
        raise IssueError(f"issue {issue_id} is a {issue.publication}; the file is a {publication}")
    return issue


def save_document(
    session: Session,
    document: IssueDocument,
    *,
    issue_id: int | None = None,
    editor: str | None = None,
) -> Issue:
    """Store a document as a new issue, or as a draft's new content.

    The number and slot are the caller's to decide (:mod:`mailer.editorial` binds every
    issue to its slot); this only stores.

    :raises IssueError: the number is missing or taken by another issue, or the
        publication differs.
    :raises IssueStateError: the issue to replace is not a draft.
    """
    now = clock.now()
    number = document.number
    if not number:
        raise IssueError("an issue needs a number (its slot's)")
    if issue_id is None:
        issue = Issue(publication=document.publication, number=number, subject=document.subject)
    else:
        issue = editable(session, issue_id, document.publication)
    clash = session.exec(
        select(Issue).where(
            col(Issue.publication) == document.publication,
            col(Issue.number) == number,
            col(Issue.id) != (issue.id or 0),
        )
    ).first()
    if clash is not None:
        raise IssueError(
            f"{document.publication} {number} already exists (issue {clash.id}); "
            "choose another number or leave it out to get the next one"
        )
    document = _linked(session, document, issue.id)
    issue.number = number
    issue.subject = document.subject
    issue.preheader = document.preheader
    issue.slot_at = document.slot_at
    issue.last_edited_by = editor
    issue.updated_at = now
    session.add(issue)
    session.flush()
    _store_content(session, issue, document)
    _follow(session, document, issue)
    return issue


def document(session: Session, issue: Issue) -> IssueDocument:
    """The issue as an issue file's document (what `mailer issue export` writes)."""
    sections = session.exec(
        select(Section).where(col(Section.issue_id) == issue.id).order_by(col(Section.position))
    ).all()
    items = session.exec(
        select(Item)
        .where(col(Item.section_id).in_([s.id for s in sections]))
        .order_by(col(Item.section_id), col(Item.position))
    ).all()
    by_section: dict[int, list[ItemContent]] = {}
    for item in items:
        image = (
            ImageContent(item.image_url, item.image_alt or "", item.image_width, item.image_height)
            if item.image_url
            else None
        )
        by_section.setdefault(item.section_id, []).append(
            ItemContent(
                title=item.title,
                body=item.body,
                link=item.link,
                image=image,
                contribution=item.contribution_id,
            )
        )
    sponsor = (
        SponsorContent(
            name=issue.sponsor_name,
            link=issue.sponsor_link or "",
            blurb=issue.sponsor_blurb or "",
            logo=issue.sponsor_logo,
            logo_alt=issue.sponsor_logo_alt,
        )
        if issue.sponsor_name
        else None
    )
    return IssueDocument(
        publication=issue.publication,
        number=issue.number,
        subject=issue.subject,
        preheader=issue.preheader,
        slot_at=issue.slot_at,
        sections=tuple(
            SectionContent(s.heading, tuple(by_section.get(s.id or 0, []))) for s in sections
        ),
        sponsor=sponsor,
    )


def diary(
    session: Session, publication: Publication, slot_at: datetime | None, zone: ZoneInfo
) -> tuple[EventContent, ...]:
    """The events diary an issue of ``publication`` carries: its audience's events from
    its slot's day (in ``zone``, the calendar's time zone), or from today."""
    start = (slot_at or clock.now()).astimezone(zone).date()
    return tuple(
        EventContent(e.starts_on, e.title, e.location, e.link)
        for e in events.upcoming(session, publication, start)
    )


def content(session: Session, issue: Issue, zone: ZoneInfo) -> IssueContent:
    """What the issue says, with the events diary it carries (:func:`diary`)."""
    return document(session, issue).content(diary(session, issue.publication, issue.slot_at, zone))


def rendering(
    session: Session, issue: Issue, renderer: Renderer, definition: PublicationDefinition
) -> RenderedIssue:
    """The issue's rendering: the frozen one once approved, a fresh one for a draft."""
    if issue.status in FROZEN and issue.rendered_html is not None:
        assert issue.rendered_text is not None and issue.render_nonce is not None
        slots = Slots(issue.render_nonce)
        return RenderedIssue(
            html=issue.rendered_html,
            text=issue.rendered_text,
            slots=slots,
            links=renderer.links(slots),
            tracked=clicks.links_of(session, issue.id or 0),
        )
    return renderer.render(content(session, issue, renderer.zone), definition)


def freeze(session: Session, issue: Issue, rendered: RenderedIssue, *, approver: str) -> Issue:
    """Freeze a draft with its rendering. Only :func:`mailer.editorial.approve` calls this:
    it checks the lint gate, the four eyes and the slot first.

    :raises IssueStateError: the issue is not a draft.
    """
    transition(session, issue, IssueStatus.APPROVED)
    issue.rendered_html = rendered.html
    issue.rendered_text = rendered.text
    issue.render_nonce = rendered.slots.nonce
    clicks.record(session, issue.id or 0, rendered.tracked)  # the redirects' only targets
    issue.approved_by = approver
    issue.approved_at = clock.now()
    session.flush()
    return issue


def reopen(session: Session, issue: Issue) -> Issue:
    """Make an approved (not yet sending) or missed issue a draft again, dropping its
    rendering; approve it again to send it (`mailer send`) or give it a new slot.

    :raises IssueStateError: the issue is not approved, scheduled or missed.
    """
    if issue.status is IssueStatus.SCHEDULED:
        transition(session, issue, IssueStatus.APPROVED)
    transition(session, issue, IssueStatus.DRAFT)
    issue.rendered_html = issue.rendered_text = issue.render_nonce = None
    clicks.forget(session, issue.id or 0)
    issue.approved_by = None
    issue.approved_at = None
    session.flush()
    return issue


def cancel(session: Session, issue: Issue) -> Issue:
    """Cancel an issue that has not started sending.

    :raises IssueStateError: the issue is sending, sent, missed or already cancelled.
    """
    return transition(session, issue, IssueStatus.CANCELLED)


def slot_label(slot_at: datetime | None, zone: ZoneInfo) -> str:
    """A slot in local time for people: 'Thu 4 Mar 2027 09:30'."""
    if slot_at is None:
        return "-"
    local = slot_at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


_NUMBER_WORDS = (
    "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
)  # fmt: skip


def _counted(n: int, unit: str) -> str:
    word = _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)
    return f"{word} {unit}{'' if n == 1 else 's'}"


def span_words(delta: timedelta) -> str:
    """A span for people, rounded down: 'seven weeks', 'three days', '40 minutes'."""
    seconds = abs(delta.total_seconds())
    hours, days = int(seconds // 3600), int(seconds // 86400)
    if hours < 1:
        return _counted(max(1, int(seconds // 60)), "minute")
    if days < 2:
        return _counted(hours, "hour")
    if days < 14:
        return _counted(days, "day")
    if days < 70:
        return _counted(days // 7, "week")
    return _counted(days // 30, "month")


def slot_timing(slot_at: datetime | None, now: datetime, zone: ZoneInfo) -> str:
    """How now stands to an issue's slot: 'seven weeks before its slot on Thu 21 Jan 2027
    09:30', 'two hours after its slot on …', or 'it has no slot'."""
    if slot_at is None:
        return "it has no slot"
    side = "before" if slot_at > now else "after"
    return f"{span_words(slot_at - now)} {side} its slot on {slot_label(slot_at, zone)}"
