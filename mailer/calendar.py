"""The editorial calendar: slots per publication, their deadlines, and what happens at each.

Bulletins follow a rhythm (a weekday every ``interval_days``, skipped months, restarting
after each skipped period); newsletters are planned by staff under a yearly cap. A slot
on an England bank holiday moves to the next working day; deadlines count working days
back. A slot's issue is the issue of the same publication and number.

Errors::

    CalendarError   a slot cannot be planned, moved or skipped (the message says why)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clock, issues, outbox, publications
from mailer.db import get_by_id
from mailer.issuefile import IssueFileError, parse_slot
from mailer.models import Issue, IssueStatus, Publication, Slot, SlotStatus
from mailer.settings import BulletinCadence, NewsletterCadence, Settings

log = logging.getLogger(__name__)
FIRST_YEAR, LAST_YEAR = 2000, 2100  # the calendar years that can be shown or planned
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The note of a slot whose time had passed when its year was first planned (skipped, never
# sent): counted apart, as before this installation, not as a shortfall.
BEFORE_SETUP = "before the calendar was set up"


class CalendarError(Exception):
    """A slot cannot be planned, moved or skipped."""


class Decision(StrEnum):
    SENT = "sent"
    MISSED = "missed"
    WAIT = "wait"
    NOTHING = "nothing"


@cache
def _holidays(year: int) -> frozenset[date]:
    import holidays  # here: a slow import most commands never need

    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


def is_working_day(day: date) -> bool:
    """Monday to Friday and not an England bank holiday."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def next_working_day(day: date) -> date:
    """``day`` itself if it is a working day, otherwise the next one."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def previous_working_day(day: date) -> date:
    """``day`` itself if it is a working day, otherwise the one before."""
    while not is_working_day(day):
        day -= timedelta(days=1)
    return day


def _off_holidays(day: date, skip: Sequence[int]) -> date | None:
    """A rhythm date moved off a weekend or bank holiday: to the next working day, or back
    to the previous one when the next falls in a skipped month or another year; None (the
    date is dropped) when neither stays in ``day``'s season."""
    for moved in (next_working_day(day), previous_working_day(day)):
        if moved.year == day.year and moved.month not in skip:
            return moved
    log.warning("no working day near %s outside the skipped months: no slot", day)
    return None


def working_days_before(day: date, count: int) -> date:
    """The working day ``count`` working days before ``day``."""
    while count > 0:
        day -= timedelta(days=1)
        if is_working_day(day):
            count -= 1
    return day


def _seasons(year: int, skip: Sequence[int]) -> Iterator[list[int]]:
    """Runs of consecutive months without a skipped one: [1..7], [9..11] by default."""
    run: list[int] = []
    for month in range(1, 13):
        if month in skip:
            if run:
                yield run
            run = []
        else:
            run.append(month)
    if run:
        yield run


def bulletin_dates(year: int, cadence: BulletinCadence) -> list[date]:
    """The bulletin dates of ``year``: each season (a run of months not skipped) starts on
    the first chosen weekday of its first month (in January, on or after
    ``new_year_start_day``), then every ``interval_days``; a date on a bank holiday moves
    to the next working day, or back when the next is in a skipped month."""
    weekday = WEEKDAYS.index(cadence.weekday)
    found: list[date] = []
    for months in _seasons(year, cadence.skip_months):
        first = cadence.new_year_start_day if months[0] == 1 else 1
        day = date(year, months[0], first)
        day += timedelta(days=(weekday - day.weekday()) % 7)
        while day.year == year and day.month in months:
            moved = _off_holidays(day, cadence.skip_months)
            if moved is not None and moved not in found:
                found.append(moved)
            day += timedelta(days=cadence.interval_days)
    return found


def newsletter_dates(year: int, cadence: NewsletterCadence) -> list[date]:
    """The monthly default pattern: the n-th chosen weekday of each month not skipped."""
    weekday = WEEKDAYS.index(cadence.weekday)
    found = []
    for month in range(1, 13):
        if month in cadence.skip_months:
            continue
        first = date(year, month, 1)
        day = first + timedelta(days=(weekday - first.weekday()) % 7)
        moved = _off_holidays(day + timedelta(weeks=cadence.week_of_month - 1), cadence.skip_months)
        if moved is not None:
            found.append(moved)
    return found[: cadence.max_per_year]


def at(day: date, clock_time: str, zone: str) -> datetime:
    """A local date and 'HH:MM' as an aware UTC datetime (right across clock changes)."""
    hours, minutes = (int(part) for part in clock_time.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _cadence(settings: Settings, publication: Publication) -> BulletinCadence | NewsletterCadence:
    return (
        settings.publications.bulletin
        if publication is Publication.BULLETIN
        else settings.publications.newsletter
    )


def deadline_for(send_at: datetime, publication: Publication, settings: Settings) -> datetime:
    """The content deadline of a slot: working days before it, at ``deadline_time``."""
    zone = settings.calendar.timezone
    local_day = send_at.astimezone(ZoneInfo(zone)).date()
    days = _cadence(settings, publication).deadline_working_days
    return at(working_days_before(local_day, days), settings.calendar.deadline_time, zone)


def _year_bounds(year: int, zone: str) -> tuple[datetime, datetime]:
    return (
        datetime(year, 1, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC),
        datetime(year + 1, 1, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC),
    )


def _slots_in_year(session: Session, publication: Publication, year: int, zone: str) -> list[Slot]:
    start, end = _year_bounds(year, zone)
    return list(
        session.exec(
            select(Slot)
            .where(
                col(Slot.publication) == publication,
                col(Slot.send_at) >= start,
                col(Slot.send_at) < end,
            )
            .order_by(col(Slot.send_at))
        )
    )


def next_number(session: Session, publication: Publication, year: int) -> str:
    """The next number of ``publication`` in ``year`` after every slot and issue: '2027/23'."""
    prefix = f"{year}/"
    taken = session.exec(
        select(Slot.number).where(
            col(Slot.publication) == publication, col(Slot.number).startswith(prefix)
        )
    ).all()
    issued = issues.next_number(session, publication, year)
    highest = max((int(n[5:]) for n in taken if n[5:].isdigit()), default=0)
    return f"{prefix}{max(highest + 1, int(issued[5:])):02d}"


def _check_cap(
    session: Session, publication: Publication, year: int, settings: Settings, adding: int = 1
) -> None:
    if publication is not Publication.NEWSLETTER:
        return
    cap = settings.publications.newsletter.max_per_year
    planned = [
        s
        for s in _slots_in_year(session, publication, year, settings.calendar.timezone)
        if s.status is not SlotStatus.SKIPPED
    ]
    if len(planned) + adding > cap:
        raise CalendarError(
            f"{year} already has {len(planned)} newsletters planned: the cap is {cap} a year "
            "([publications.newsletter] max_per_year); skip or move one first"
        )


def check_year(year: int) -> None:
    """:raises CalendarError: ``year`` is outside FIRST_YEAR..LAST_YEAR."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarError(f"the year {year} is not between {FIRST_YEAR} and {LAST_YEAR}")


def ensure_year(session: Session, year: int, settings: Settings) -> int:
    """Plan the year's bulletins from the rhythm, once; returns how many were added."""
    zone = settings.calendar.timezone
    planned = session.exec(
        select(Slot.id).where(
            col(Slot.publication) == Publication.BULLETIN,
            col(Slot.origin) == "rule",
            col(Slot.number).startswith(f"{year}/"),
        )
    ).first()
    if planned is not None:  # planned before (slots moved or added since stay as they are)
        return 0
    cadence = settings.publications.bulletin
    now = clock.now()
    for number, day in enumerate(bulletin_dates(year, cadence), start=1):
        send_at = at(day, cadence.send_time, zone)
        # Planned after its time (and beyond the daemon's grace): shown, never missed or sent.
        past = send_at <= now - timedelta(hours=settings.calendar.grace_hours)
        session.add(
            Slot(
                publication=Publication.BULLETIN,
                number=f"{year}/{number:02d}",
                send_at=send_at,
                deadline_at=deadline_for(send_at, Publication.BULLETIN, settings),
                status=SlotStatus.SKIPPED if past else SlotStatus.PLANNED,
                note=BEFORE_SETUP if past else "",
            )
        )
    session.flush()
    return len(bulletin_dates(year, cadence))


def plan_newsletters(session: Session, year: int, settings: Settings) -> list[Slot]:
    """Add the monthly default pattern's newsletters to months that have none, up to the cap.

    :raises CalendarError: ``year`` is outside FIRST_YEAR..LAST_YEAR.
    """
    check_year(year)
    zone = settings.calendar.timezone
    cadence = settings.publications.newsletter
    existing = _slots_in_year(session, Publication.NEWSLETTER, year, zone)
    months = {s.send_at.astimezone(ZoneInfo(zone)).month for s in existing}
    added = []
    for day in newsletter_dates(year, cadence):
        if day.month in months:
            continue
        try:
            _check_cap(session, Publication.NEWSLETTER, year, settings)
        except CalendarError:
            break
        added.append(
            _add(
                session,
                Publication.NEWSLETTER,
                at(day, cadence.send_time, zone),
                settings,
                "pattern",
            )
        )
    return added


def _add(
    session: Session, publication: Publication, send_at: datetime, settings: Settings, origin: str
) -> Slot:
    year = send_at.astimezone(ZoneInfo(settings.calendar.timezone)).year
    waiting = session.exec(
        select(Issue).where(col(Issue.publication) == publication, col(Issue.slot_at) == send_at)
    ).first()
    taken = (
        waiting is not None
        and session.exec(
            select(Slot).where(
                col(Slot.publication) == publication, col(Slot.number) == waiting.number
            )
        ).first()
    )
    slot = Slot(
        publication=publication,
        number=waiting.number if waiting and not taken else next_number(session, publication, year),
        send_at=send_at,
        deadline_at=deadline_for(send_at, publication, settings),
        origin=origin,
    )
    session.add(slot)
    session.flush()
    return slot


def _check_free(
    session: Session, publication: Publication, send_at: datetime, moving: int | None = None
) -> None:
    """:raises CalendarError: another slot of ``publication`` (not skipped) is at that time."""
    other = session.exec(
        select(Slot).where(
            col(Slot.publication) == publication,
            col(Slot.send_at) == send_at,
            col(Slot.status) != SlotStatus.SKIPPED,
            col(Slot.id) != (moving or 0),
        )
    ).first()
    if other is not None:
        raise CalendarError(
            f"{publication} {other.number} is already at that time (slot {other.id}): "
            "two issues of one publication never go out at once"
        )


def add_slot(
    session: Session, publication: Publication, send_at: datetime, settings: Settings
) -> Slot:
    """Add one slot (an extra bulletin, or a newsletter) without touching the others.

    :raises CalendarError: it is in the past, another slot of the publication is at that
        time, or it would pass the newsletter cap.
    """
    if send_at <= clock.now():
        raise CalendarError("a new slot must be in the future")
    year = send_at.astimezone(ZoneInfo(settings.calendar.timezone)).year
    ensure_year(session, year, settings)
    _check_cap(session, publication, year, settings)
    _check_free(session, publication, send_at)
    return _add(session, publication, send_at, settings, "extra")


def get(session: Session, slot_id: int) -> Slot:
    """The slot with this id.

    :raises CalendarError: there is none.
    """
    slot = get_by_id(session, Slot, slot_id)
    if slot is None:
        raise CalendarError(f"there is no slot {slot_id} (see `mailer calendar`)")
    return slot


def issue_of(session: Session, slot: Slot) -> Issue | None:
    """The issue written for a slot: same publication and number."""
    return session.exec(
        select(Issue).where(
            col(Issue.publication) == slot.publication, col(Issue.number) == slot.number
        )
    ).first()


def parse_when(value: str, zone: ZoneInfo) -> datetime:
    """A send time as staff type it: '2027-03-11T09:30' (local time in ``zone``) or ISO 8601
    with an offset.

    :raises CalendarError: it is not a date and time.
    """
    try:
        when = parse_slot(value, zone, "time")
    except IssueFileError as exc:
        raise CalendarError(str(exc)) from None
    if when is None:
        raise CalendarError(f"time: expected a date and time like 2027-03-04T09:30, got {value!r}")
    return when


def _why_fixed(slot: Slot, issue: Issue | None) -> str | None:
    """Why a slot can be neither moved nor skipped, or None if it can."""
    if slot.status is not SlotStatus.PLANNED:
        return f"slot {slot.id} is {slot.status}: only a planned slot can change"
    if issue is not None and issue.status is not IssueStatus.DRAFT:
        return (
            f"the issue for slot {slot.id} is {issue.status}: reopen it (`mailer issue "
            f"reopen {issue.id}`) before moving or skipping its slot"
        )
    return None


def _changeable(session: Session, slot: Slot) -> Issue | None:
    issue = issue_of(session, slot)
    reason = _why_fixed(slot, issue)
    if reason is not None:
        raise CalendarError(reason)
    return issue


def move_slot(session: Session, slot_id: int, send_at: datetime, settings: Settings) -> Slot:
    """Move one slot; the others stay where they are.

    :raises CalendarError: the slot is not planned, its issue is approved, the time is past,
        or the newsletter cap of the new year would be passed.
    """
    slot = get(session, slot_id)
    issue = _changeable(session, slot)
    if send_at <= clock.now():
        raise CalendarError("a slot can only move to a time in the future")
    _check_free(session, slot.publication, send_at, moving=slot.id)
    zone = ZoneInfo(settings.calendar.timezone)
    new_year = send_at.astimezone(zone).year
    if new_year != slot.send_at.astimezone(zone).year:
        _check_cap(session, slot.publication, new_year, settings)
    slot.send_at = send_at
    slot.deadline_at = deadline_for(send_at, slot.publication, settings)
    slot.deadline_reminded_at = slot.morning_reminded_at = None
    slot.updated_at = clock.now()
    if issue is not None:
        issue.slot_at = send_at
    session.flush()
    return slot


def skip_slot(session: Session, slot_id: int, note: str = "") -> Slot:
    """Skip one slot (nothing is sent then); the others stay.

    :raises CalendarError: the slot is not planned or its issue is approved.
    """
    slot = get(session, slot_id)
    _changeable(session, slot)
    slot.status = SlotStatus.SKIPPED
    slot.note = note[:300]
    slot.updated_at = clock.now()
    session.flush()
    return slot


@dataclass(frozen=True)
class SlotView:
    """A slot as staff see it."""

    id: int
    publication: Publication
    number: str
    send_at: datetime
    deadline_at: datetime
    status: str
    issue_id: int | None
    note: str
    changeable: bool = False  # planned, its issue (if any) a draft: it can move or be skipped
    before_setup: bool = False  # its time had passed when the year was first planned

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "publication": self.publication.value,
            "number": self.number,
            "send_at": self.send_at.isoformat(),
            "deadline": self.deadline_at.isoformat(),
            "status": self.status,
            "issue": self.issue_id,
            "note": self.note,
            "before_setup": self.before_setup,
        }


def _shown_status(slot: Slot, issue: Issue | None) -> str:
    if slot.status in (SlotStatus.SKIPPED, SlotStatus.MISSED):
        return slot.status.value
    if issue is None:
        return "planned"
    if issue.status in (IssueStatus.APPROVED, IssueStatus.SCHEDULED):
        return "approved"
    return issue.status.value


def _before_setup(slot: Slot) -> bool:
    """Skipped because its time had passed when its year was first planned: created after
    its time, which staff cannot do (a new or moved slot must be in the future)."""
    return (
        slot.status is SlotStatus.SKIPPED
        and slot.note == BEFORE_SETUP
        and slot.created_at > slot.send_at
    )


def year_view(session: Session, year: int, settings: Settings) -> list[SlotView]:
    """Every slot of ``year`` (bulletins planned on first look), in time order.

    :raises CalendarError: ``year`` is outside FIRST_YEAR..LAST_YEAR.
    """
    check_year(year)
    ensure_year(session, year, settings)
    zone = settings.calendar.timezone
    views = []
    for publication in Publication:
        for slot in _slots_in_year(session, publication, year, zone):
            issue = issue_of(session, slot)
            assert slot.id is not None
            views.append(
                SlotView(
                    id=slot.id,
                    publication=slot.publication,
                    number=slot.number,
                    send_at=slot.send_at,
                    deadline_at=slot.deadline_at,
                    status=_shown_status(slot, issue),
                    issue_id=issue.id if issue else None,
                    note=slot.note,
                    changeable=_why_fixed(slot, issue) is None,
                    before_setup=_before_setup(slot),
                )
            )
    return sorted(views, key=lambda v: v.send_at)


@dataclass(frozen=True)
class YearCount:
    """A year's slots of one publication against its target (bulletins) or cap."""

    publication: Publication
    planned: int  # not skipped: sent, to be sent, or missed
    target: int
    is_cap: bool
    before_setup: int = 0  # passed before the calendar was set up: neither planned nor short

    @property
    def warning(self) -> str | None:
        if self.is_cap and self.planned > self.target:
            return f"{self.planned} {self.publication}s is over the cap of {self.target}"
        if not self.is_cap and self.planned + self.before_setup != self.target:
            before = (
                f" and {self.before_setup} before this installation" if self.before_setup else ""
            )
            return (
                f"{self.planned} {self.publication}s planned{before}; the target is {self.target}"
            )
        return None


def year_counts(views: Sequence[SlotView], settings: Settings) -> list[YearCount]:
    """Per publication, the slots that will go out against the target or the cap; slots
    that passed before the calendar was set up count apart, never as a shortfall."""
    counts = []
    for publication in Publication:
        own = [v for v in views if v.publication is publication]
        planned = sum(1 for v in own if v.status != "skipped")
        before = sum(1 for v in own if v.before_setup)
        if publication is Publication.BULLETIN:
            target, is_cap = settings.publications.bulletin.per_year, False
        else:
            target, is_cap = settings.publications.newsletter.max_per_year, True
        counts.append(YearCount(publication, planned, target, is_cap, before))
    return counts


def to_ics(views: Sequence[SlotView], domain: str) -> bytes:
    """The slots and their deadlines as iCalendar events for staff calendars."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//LEP Network//mailer//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "LEP Network bulletins and newsletters")
    for view in views:
        if view.status == "skipped":
            continue
        name = f"{view.publication.value.title()} {view.number}"
        send = icalendar.Event()
        send.add("uid", f"slot-{view.id}@{domain}")
        send.add("summary", f"{name} goes out ({view.status})")
        send.add("dtstart", view.send_at)
        send.add("dtend", view.send_at + timedelta(minutes=30))
        send.add("dtstamp", clock.now())
        send.add("description", f"Content deadline: {view.deadline_at.isoformat()}")
        calendar.add_component(send)
        due = icalendar.Event()
        due.add("uid", f"deadline-{view.id}@{domain}")
        due.add("summary", f"Content deadline: {name}")
        due.add("dtstart", view.deadline_at)
        due.add("dtend", view.deadline_at + timedelta(minutes=15))
        due.add("dtstamp", clock.now())
        calendar.add_component(due)
    return bytes(calendar.to_ical())


# -- what the daemon decides at a slot --------------------------------------------------


def due_slots(session: Session, now: datetime) -> list[Slot]:
    """Planned slots whose time has come."""
    return list(
        session.exec(
            select(Slot)
            .where(col(Slot.status) == SlotStatus.PLANNED, col(Slot.send_at) <= now)
            .order_by(col(Slot.send_at))
        )
    )


def upcoming_slots(session: Session, now: datetime) -> list[Slot]:
    """Planned slots still to come (the daemon schedules a job for each)."""
    return list(
        session.exec(
            select(Slot)
            .where(col(Slot.status) == SlotStatus.PLANNED, col(Slot.send_at) > now)
            .order_by(col(Slot.send_at))
        )
    )


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    slot_id: int
    reason: str
    issue_id: int | None = None


def dispatch(
    session: Session,
    slot_id: int,
    now: datetime,
    grace: timedelta,
    lists_dir: Path,
) -> Outcome:
    """Decide a slot whose time has come, and commit the decision.

    An approved issue is queued for sending (once: its status moves to sending in the same
    transaction). No approved issue at the slot, or a slot more than ``grace`` in the past:
    the slot is missed. A slot that is not due yet waits.
    """
    query = select(Slot).where(col(Slot.id) == slot_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    slot = session.exec(query).first()
    if slot is None or slot.status is not SlotStatus.PLANNED:
        session.commit()
        return Outcome(Decision.NOTHING, slot_id, "already decided")
    if now < slot.send_at:
        session.commit()
        return Outcome(Decision.WAIT, slot_id, "not due yet")
    issue = issue_of(session, slot)
    late = now - slot.send_at
    if issue is not None and issue.status in outbox.SENDABLE and late <= grace:
        rule = publications.load(lists_dir, issue.publication).audience
        try:
            queued = outbox.enqueue(session, issue, rule)
        except sa.exc.IntegrityError:
            # Another process queued it first (the outbox is unique per issue and contact).
            session.rollback()
            return Outcome(Decision.NOTHING, slot_id, "already queued elsewhere", issue.id)
        slot.status = SlotStatus.DISPATCHED
        slot.dispatched_at = now
        session.commit()
        when = "on time" if late < timedelta(minutes=5) else f"{late} late, within grace"
        return Outcome(Decision.SENT, slot_id, f"queued {queued} deliveries ({when})", issue.id)
    if issue is not None and issue.status in (IssueStatus.SENDING, IssueStatus.SENT):
        slot.status = SlotStatus.DISPATCHED
        slot.dispatched_at = slot.dispatched_at or now
        session.commit()
        return Outcome(Decision.NOTHING, slot_id, f"issue already {issue.status}", issue.id)
    if issue is None:
        reason = "no issue was written for it"
    elif issue.status in outbox.SENDABLE:
        reason = f"the daemon was down until {late} after the slot (grace {grace})"
        issues.transition(session, issue, IssueStatus.MISSED)
    else:
        reason = f"its issue is {issue.status}, not approved"
    slot.status = SlotStatus.MISSED
    slot.updated_at = now
    session.commit()
    return Outcome(Decision.MISSED, slot_id, reason, issue.id if issue else None)


@dataclass(frozen=True)
class Reminder:
    slot_id: int
    kind: str  # "deadline" or "morning"
    publication: Publication
    number: str
    send_at: datetime
    deadline_at: datetime
    issue_status: str


def reminders_due(session: Session, now: datetime, settings: Settings) -> list[Reminder]:
    """Reminders due now: at a slot's deadline, and on the morning of the slot, while it
    still has no approved issue. Mark each with :func:`mark_reminded` once it is sent."""
    zone = ZoneInfo(settings.calendar.timezone)
    hours, minutes = (int(p) for p in settings.calendar.reminder_time.split(":"))
    found = []
    for slot in session.exec(
        select(Slot).where(col(Slot.status) == SlotStatus.PLANNED, col(Slot.deadline_at) <= now)
    ):
        issue = issue_of(session, slot)
        if issue is not None and issue.status is not IssueStatus.DRAFT:
            continue
        state = issue.status.value if issue else "not started"
        assert slot.id is not None
        local_day = slot.send_at.astimezone(zone).date()
        morning = datetime.combine(local_day, time(hours, minutes), tzinfo=zone)
        kind = None
        if slot.deadline_reminded_at is None:
            kind = "deadline"
        if now >= morning and now < slot.send_at and slot.morning_reminded_at is None:
            kind = "morning"  # one email on the morning says all the deadline one would
        if kind is not None:
            found.append(
                Reminder(
                    slot.id,
                    kind,
                    slot.publication,
                    slot.number,
                    slot.send_at,
                    slot.deadline_at,
                    state,
                )
            )
    return found


def alerts_due(session: Session) -> list[Slot]:
    """Missed slots whose alert to staff has not gone yet (the relay was down, say): the
    daemon tries again on every tick until :func:`mark_alerted`."""
    return list(
        session.exec(
            select(Slot)
            .where(col(Slot.status) == SlotStatus.MISSED, col(Slot.missed_alerted_at).is_(None))
            .order_by(col(Slot.send_at))
        )
    )


def mark_alerted(session: Session, slot_id: int, now: datetime) -> None:
    """Record that staff were told of a missed slot (once per slot). Commits."""
    slot = get(session, slot_id)
    slot.missed_alerted_at = slot.missed_alerted_at or now
    session.commit()


def mark_reminded(session: Session, slot_id: int, kind: str, now: datetime) -> None:
    """Record that a reminder went out (a morning reminder covers the deadline one). Commits."""
    slot = get(session, slot_id)
    slot.deadline_reminded_at = slot.deadline_reminded_at or now
    if kind == "morning":
        slot.morning_reminded_at = now
    session.commit()


def count_by_status(session: Session) -> dict[SlotStatus, int]:
    """How many slots have each status (for logs)."""
    rows = session.execute(
        sa.select(col(Slot.status), sa.func.count()).group_by(col(Slot.status))
    ).all()
    return {SlotStatus(s): int(n) for s, n in rows}
