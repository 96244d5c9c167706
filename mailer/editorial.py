"""Editorial rules: issues are created, edited and approved only here, each bound to an open
slot of its own publication, behind the lint gate and the four-eyes rule.

Every front end (console, CLI, demo loader) calls these functions; none re-states a rule.

- An issue's slot is a planned slot of its publication that no other issue holds. A slot
  time (``--slot``, the file's ``slot:``, the console's choice) must be exactly one; the
  issue's number is always that slot's. An issue with neither time nor number is
  unscheduled (numbered after every slot of its year) and is sent with ``mailer send``.
- People are named: editors and approvers are staff accounts (by address), or the
  operating-system user at the command line (:func:`mailer.staff.identify`).
- Approval: the account must have a role that approves; the last editor may not
  approve unless ``[staff] approver_may_be_editor``; lint errors (the untouched
  skeleton among them) block; the slot is checked again; the issue is then
  frozen and, with a planned slot, scheduled. Every step is audited by name.

Errors::

    IssueError (mailer.issues)
     +-- SlotError        the slot asked for is not an open slot of the issue's publication
     +-- ApprovalRefused  the approver may not approve, or lint errors block
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from mailer import audit, calendar, clock, content, issues, lint, staff
from mailer.content import IssueDocument
from mailer.issues import IssueError, IssueStateError
from mailer.models import Issue, IssueStatus, Publication, Slot, SlotStatus
from mailer.publications import PublicationDefinition
from mailer.rendering import Renderer
from mailer.settings import Settings


class SlotError(IssueError):
    """The slot asked for is not an open slot of the issue's publication."""


class ApprovalRefused(IssueError):
    """The approver may not approve this issue, or its lint errors block approval."""

    def __init__(self, message: str, findings: Sequence[lint.Finding] = ()) -> None:
        super().__init__(message)
        self.findings = list(findings)


@dataclass(frozen=True)
class Binding:
    """The number an issue takes, and its slot (None: unscheduled)."""

    number: str
    slot: Slot | None

    @property
    def slot_at(self) -> datetime | None:
        return self.slot.send_at if self.slot is not None else None


@dataclass(frozen=True)
class Approval:
    """An approved issue; ``slot`` is set when it is scheduled for it."""

    issue: Issue
    slot: Slot | None
    findings: list[lint.Finding]
    note: str


def _is_open(session: Session, slot: Slot, issue_id: int | None) -> bool:
    if slot.status is not SlotStatus.PLANNED:
        return False
    holder = calendar.issue_of(session, slot)
    return holder is None or (issue_id is not None and holder.id == issue_id)


def open_slots(
    session: Session, publication: Publication, *, issue_id: int | None = None
) -> list[Slot]:
    """Planned slots of ``publication`` still to come that no other issue holds."""
    return [
        slot
        for slot in calendar.upcoming_slots(session, clock.now())
        if slot.publication is publication and _is_open(session, slot, issue_id)
    ]


def _label(slot: Slot, settings: Settings) -> str:
    return f"{slot.number} ({issues.slot_label(slot.send_at, settings.calendar.zone)})"


def _nearest(
    session: Session,
    publication: Publication,
    around: datetime | None,
    issue_id: int | None,
    settings: Settings,
) -> str:
    """'the nearest open bulletin slots: 2031/04 (…), 2031/05 (…)', for error messages."""
    found = open_slots(session, publication, issue_id=issue_id)
    if not found:
        return (
            f"there is no open {publication} slot: plan one with "
            f"`mailer calendar add {publication} WHEN` (see `mailer calendar`)"
        )
    point = around or clock.now()
    closest = sorted(
        sorted(found, key=lambda s: abs(s.send_at - point))[:2], key=lambda s: s.send_at
    )
    return f"the nearest open {publication} slots: " + ", ".join(
        _label(s, settings) for s in closest
    )


def _why_not_open(
    session: Session, publication: Publication, slot_at: datetime, settings: Settings
) -> str:
    zone = settings.calendar.zone
    when = issues.slot_label(slot_at, zone)
    at_time = session.exec(select(Slot).where(col(Slot.send_at) == slot_at)).all()
    own = next((s for s in at_time if s.publication is publication), None)
    if own is None:
        other = next(iter(at_time), None)
        there = f" (that is a {other.publication} slot)" if other is not None else ""
        return f"there is no {publication} slot at {when}{there}"
    if own.status is not SlotStatus.PLANNED:
        return f"the {publication} slot {own.number} at {when} is {own.status}"
    holder = calendar.issue_of(session, own)
    held = holder.id if holder else "?"
    return f"the {publication} slot {own.number} at {when} already has issue {held}"


def bind(
    session: Session,
    publication: Publication,
    *,
    slot_at: datetime | None,
    number: str,
    issue_id: int | None,
    settings: Settings,
) -> Binding:
    """The slot and number an issue of ``publication`` takes.

    A time must be that of an open slot (its number must then agree, or be left out); a
    number alone names its slot, which must be open; neither keeps a draft's own number
    and slot, or numbers a new issue after every slot of this year (unscheduled).

    :raises SlotError: no open slot of the publication matches; the message names why and
        the nearest open slots.
    """
    zone = settings.calendar.zone
    if slot_at is not None:
        calendar.ensure_year(session, slot_at.astimezone(zone).year, settings)
        at_time = session.exec(
            select(Slot).where(col(Slot.publication) == publication, col(Slot.send_at) == slot_at)
        ).all()
        found = next((s for s in at_time if _is_open(session, s, issue_id)), None)
        if found is None:
            reason = _why_not_open(session, publication, slot_at, settings)
            nearest = _nearest(session, publication, slot_at, issue_id, settings)
            raise SlotError(f"{reason}; {nearest}")
        if number and number != found.number:
            raise SlotError(
                f"number {number} does not match the slot at "
                f"{issues.slot_label(slot_at, zone)}, which is {publication} {found.number}: "
                "leave the number out (it comes from the slot) or correct it"
            )
        return Binding(found.number, found)
    current = issues.get(session, issue_id) if issue_id is not None else None
    if not number and current is not None:
        number = current.number
    if number:
        if number[:4].isdigit():
            calendar.ensure_year(session, int(number[:4]), settings)
        found = session.exec(
            select(Slot).where(col(Slot.publication) == publication, col(Slot.number) == number)
        ).first()
        if found is not None:
            if not _is_open(session, found, issue_id):
                reason = _why_not_open(session, publication, found.send_at, settings)
                nearest = _nearest(session, publication, found.send_at, issue_id, settings)
                raise SlotError(f"{reason}; {nearest}")
            return Binding(number, found)
        if current is not None and current.number == number and current.slot_at is None:
            return Binding(number, None)  # an unscheduled draft keeps its number
        nearest = _nearest(session, publication, None, issue_id, settings)
        raise SlotError(
            f"{publication} {number} is not in the calendar: give the time of an open slot "
            f"(slot:) instead; {nearest}"
        )
    year = clock.now().astimezone(zone).year
    calendar.ensure_year(session, year, settings)
    return Binding(calendar.next_number(session, publication, year), None)


def new_draft(
    session: Session, publication: Publication, *, slot_at: datetime | None, settings: Settings
) -> IssueDocument:
    """The skeleton of a new issue for the open slot at ``slot_at``, or for the next open
    slot (unscheduled when there is none). Its placeholders are lint errors.

    :raises SlotError: ``slot_at`` is not the time of an open slot.
    """
    if slot_at is None:
        year = clock.now().astimezone(settings.calendar.zone).year
        for planned in (year, year + 1):
            calendar.ensure_year(session, planned, settings)
        upcoming = open_slots(session, publication)
        binding = (
            Binding(upcoming[0].number, upcoming[0])
            if upcoming
            else bind(
                session, publication, slot_at=None, number="", issue_id=None, settings=settings
            )
        )
    else:
        binding = bind(
            session, publication, slot_at=slot_at, number="", issue_id=None, settings=settings
        )
    return content.skeleton(publication, binding.number, binding.slot_at)


def save(
    session: Session,
    document: IssueDocument,
    *,
    editor: str,
    settings: Settings,
    issue_id: int | None = None,
) -> Issue:
    """Create an issue from ``document``, or make it a draft's new content, bound to its
    slot (:func:`bind`); recorded in the audit log by ``editor``. The caller commits.

    :raises IssueError: no editor is named, the issue is not a draft, or the publication
        differs.
    :raises SlotError: the document's slot or number is not an open slot's.
    """
    try:
        editor, _ = staff.identify(session, editor)
    except staff.StaffError as exc:
        raise IssueError(str(exc)) from None
    if issue_id is not None:
        issues.editable(session, issue_id, document.publication)
    binding = bind(
        session,
        document.publication,
        slot_at=document.slot_at,
        number=document.number,
        issue_id=issue_id,
        settings=settings,
    )
    bound = dataclasses.replace(document, number=binding.number, slot_at=binding.slot_at)
    issue = issues.save_document(session, bound, issue_id=issue_id, editor=editor)
    where = _label(binding.slot, settings) if binding.slot else f"{binding.number}, unscheduled"
    audit.record(
        session,
        editor,
        "issue:edit" if issue_id is not None else "issue:new",
        f"issue {issue.id}",
        f"{issue.publication} {where}",
    )
    return issue


def _approval_slot(
    session: Session, issue: Issue, slot_id: int | None, settings: Settings, approver: str
) -> Slot | None:
    """The slot the issue is approved for; a chosen slot gives the issue its number and
    time first. None: unscheduled.

    :raises SlotError: the chosen slot is another publication's or not open, or the
        issue's own slot is skipped or already sent.
    :raises CalendarError: there is no slot ``slot_id``.
    """
    assert issue.id is not None
    if slot_id is not None:
        chosen = calendar.get(session, slot_id)
        if chosen.publication is not issue.publication:
            raise SlotError(
                f"slot {slot_id} is a {chosen.publication} slot; issue {issue.id} is a "
                f"{issue.publication}: choose one of its own slots"
            )
        if not _is_open(session, chosen, issue.id):
            reason = _why_not_open(session, issue.publication, chosen.send_at, settings)
            nearest = _nearest(session, issue.publication, chosen.send_at, issue.id, settings)
            raise SlotError(f"{reason}; {nearest}")
        if (chosen.number, chosen.send_at) != (issue.number, issue.slot_at):
            audit.record(
                session,
                approver,
                "issue:slot",
                f"issue {issue.id}",
                f"{issue.number} -> {_label(chosen, settings)}",
            )
            issue.number, issue.slot_at = chosen.number, chosen.send_at
            issue.updated_at = clock.now()
            session.flush()
        return chosen
    slot = _own_slot(session, issue)
    if slot is None:
        if issue.slot_at is None:
            return None  # unscheduled: sent by hand
        nearest = _nearest(session, issue.publication, issue.slot_at, issue.id, settings)
        raise SlotError(
            f"{issue.publication} {issue.number} has no slot in the calendar: choose an open "
            f"slot for it; {nearest}"
        )
    if slot.status is SlotStatus.PLANNED:
        issue.slot_at = slot.send_at  # a draft's time follows its slot's
        return slot
    if slot.status is SlotStatus.MISSED:
        return slot  # approved to be sent late, by hand
    nearest = _nearest(session, issue.publication, slot.send_at, issue.id, settings)
    raise SlotError(
        f"the slot of {issue.publication} {issue.number} is {slot.status}: choose an open "
        f"slot for it; {nearest}"
    )


def _own_slot(session: Session, issue: Issue) -> Slot | None:
    return session.exec(
        select(Slot).where(
            col(Slot.publication) == issue.publication, col(Slot.number) == issue.number
        )
    ).first()


def approve(
    session: Session,
    issue_id: int,
    *,
    approver: str,
    renderer: Renderer,
    definition: PublicationDefinition,
    settings: Settings,
    slot_id: int | None = None,
) -> Approval:
    """Approve a draft: check who approves, its slot (or the slot chosen), its lint; then
    freeze its content and rendering and schedule it for a planned slot. Audited by
    ``approver``. The caller commits.

    :raises IssueStateError: the issue is not a draft.
    :raises ApprovalRefused: nobody is named; the named staff account may not approve;
        the approver edited it last (four eyes); or lint errors block (``findings``).
    :raises SlotError: the slot is not an open slot of the issue's publication.
    """
    issue = issues.get(session, issue_id)
    if issue.status is not IssueStatus.DRAFT:
        raise IssueStateError(f"issue {issue_id} is {issue.status}: only a draft can be approved")
    try:
        who, account = staff.identify(session, approver)
    except staff.StaffError as exc:
        raise ApprovalRefused(str(exc)) from None
    if account is not None and not staff.can_approve(account.role):
        raise ApprovalRefused(
            f"{who} is an {account.role}: approving needs the approver or admin role"
        )
    editor = (issue.last_edited_by or "").strip()
    if not settings.staff.approver_may_be_editor and editor == who:
        raise ApprovalRefused(
            f"{who} edited issue {issue_id} last: another approver must approve it "
            "(four eyes: approver_may_be_editor = false in config.toml's [staff] section)"
        )
    slot = _approval_slot(session, issue, slot_id, settings, who)
    rendered = issues.rendering(session, issue, renderer, definition)
    findings = lint.lint(issues.content(session, issue, settings.calendar.zone), rendered)
    blocking = lint.errors(findings)
    if blocking:
        raise ApprovalRefused(
            f"issue {issue_id} has {len(blocking)} lint errors: fix them, then approve", findings
        )
    issues.freeze(session, issue, rendered, approver=who)
    if slot is not None and slot.status is SlotStatus.PLANNED:
        issues.transition(session, issue, IssueStatus.SCHEDULED)
        note = f"scheduled for {_label(slot, settings)}"
    elif slot is not None:
        note = (
            f"its slot {slot.number} was {slot.status}: send it now with `mailer send {issue_id}`"
        )
        slot = None
    else:
        note = f"unscheduled: send it with `mailer send {issue_id}`"
    audit.record(session, who, "issue:approve", f"issue {issue_id}", note)
    return Approval(issue, slot, findings, note)
