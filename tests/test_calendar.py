"""The editorial calendar: 22 bulletins a year, the newsletter cap, bank holidays, clock changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from mailer import calendar, clock, editorial, issuefile, issues
from mailer.calendar import CalendarError
from mailer.models import IssueStatus, Publication, Slot, SlotStatus
from mailer.settings import BulletinCadence, NewsletterCadence, Settings
from tests.outbox_fixtures import EDITOR, approved, drafted, staff_accounts
from tests.rendering_fixtures import DATA, ZONE

LONDON = ZoneInfo("Europe/London")
YEARS = st.integers(min_value=2026, max_value=2035)
WEEKDAYS = st.sampled_from(calendar.WEEKDAYS[:5])
TIMES = st.sampled_from(["07:00", "09:30", "12:15", "16:45"])
SETTINGS = Settings()


@pytest.mark.parametrize("year", range(2026, 2036))
def test_the_default_rhythm_gives_exactly_22_bulletins(year: int) -> None:
    dates = calendar.bulletin_dates(year, BulletinCadence())
    assert len(dates) == 22
    assert all(d.month not in (8, 12) for d in dates)
    assert dates[0].month == 1
    assert dates[0].day >= 4  # after the New Year holidays
    assert next(d for d in dates if d.month >= 9).day <= 7  # early September


@settings(max_examples=200, deadline=None)
@given(year=YEARS, weekday=WEEKDAYS, send_time=TIMES)
def test_property_the_rhythm_for_any_weekday_and_time(
    year: int, weekday: str, send_time: str
) -> None:
    cadence = BulletinCadence(weekday=weekday, send_time=send_time)
    dates = calendar.bulletin_dates(year, cadence)
    assert len(dates) == 22
    wanted = calendar.WEEKDAYS.index(weekday)
    for day in dates:
        assert day.month not in (8, 12)
        assert calendar.is_working_day(day)
        # On the chosen weekday, or moved on by a bank holiday (at most to the next week).
        moved = (day.weekday() - wanted) % 7
        assert moved == 0 or not calendar.is_working_day(day - timedelta(days=moved))
    # Fourteen days apart within a season, but for bank-holiday moves (Good Friday to
    # the Tuesday after Easter is the longest: four days).
    for earlier, later in itertools.pairwise(dates):
        if later - earlier < timedelta(days=30):
            assert timedelta(days=10) <= later - earlier <= timedelta(days=18)
    # 09:30 London is 09:30 in January and in July: the UTC offset follows the clock change.
    for day in dates:
        sent = calendar.at(day, send_time, "Europe/London")
        local = sent.astimezone(LONDON)
        assert f"{local:%H:%M}" == send_time
        summer = _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)
        assert local.utcoffset() == timedelta(hours=1 if summer else 0)


def _last_sunday(year: int, month: int) -> date:
    """British Summer Time runs from the last Sunday of March to that of October."""
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def test_clock_changes_move_the_utc_time_not_the_local_time() -> None:
    january = calendar.at(date(2027, 1, 7), "09:30", "Europe/London")
    july = calendar.at(date(2027, 7, 8), "09:30", "Europe/London")
    assert (january.hour, january.minute) == (9, 30)
    assert (july.hour, july.minute) == (8, 30)
    # The Thursday after the spring change (28 March 2027) is on summer time already.
    assert calendar.at(date(2027, 4, 1), "09:30", "Europe/London").hour == 8


def test_a_bank_holiday_moves_the_slot_to_the_next_working_day() -> None:
    mondays = calendar.bulletin_dates(2027, BulletinCadence(weekday="monday"))
    assert date(2027, 3, 29) not in mondays  # Easter Monday
    assert date(2027, 3, 30) in mondays
    fridays = calendar.bulletin_dates(2026, BulletinCadence(weekday="friday"))
    assert date(2026, 4, 3) not in fridays  # Good Friday, then Easter Monday
    assert date(2026, 4, 7) in fridays


def test_deadlines_count_working_days_back() -> None:
    send_at = calendar.at(date(2027, 3, 4), "09:30", "Europe/London")  # a Thursday
    deadline = calendar.deadline_for(send_at, Publication.BULLETIN, SETTINGS)
    assert deadline.astimezone(LONDON) == datetime(2027, 3, 2, 17, 0, tzinfo=LONDON)
    after_easter = calendar.at(date(2027, 3, 31), "09:30", "Europe/London")  # Wednesday
    deadline = calendar.deadline_for(after_easter, Publication.BULLETIN, SETTINGS)
    # Two working days back skips Easter Monday and Good Friday: Thursday 25 March.
    assert deadline.astimezone(LONDON).date() == date(2027, 3, 25)


@settings(max_examples=50, deadline=None)
@given(year=YEARS)
def test_property_the_newsletter_pattern_fills_the_cap_exactly(year: int) -> None:
    dates = calendar.newsletter_dates(year, NewsletterCadence())
    assert len(dates) == 10
    assert {d.month for d in dates} == set(range(1, 13)) - {8, 12}
    assert all(calendar.is_working_day(d) for d in dates)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON).astimezone(UTC)


def test_the_newsletter_cap_refuses_an_eleventh(session: Session) -> None:
    with clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)):
        assert len(calendar.plan_newsletters(session, 2027, SETTINGS)) == 10
        assert calendar.plan_newsletters(session, 2027, SETTINGS) == []
        with pytest.raises(
            CalendarError, match="already has 10 newsletters planned: the cap is 10"
        ):
            calendar.add_slot(session, Publication.NEWSLETTER, _at("2027-08-19T10:00"), SETTINGS)
        # Skipping one frees a place.
        views = calendar.year_view(session, 2027, SETTINGS)
        june = next(
            v for v in views if v.publication is Publication.NEWSLETTER and v.send_at.month == 6
        )
        calendar.skip_slot(session, june.id, "summer break")
        extra = calendar.add_slot(
            session, Publication.NEWSLETTER, _at("2027-08-19T10:00"), SETTINGS
        )
        assert extra.number == "2027/11"
        counts = calendar.year_counts(calendar.year_view(session, 2027, SETTINGS), SETTINGS)
        newsletter = next(c for c in counts if c.publication is Publication.NEWSLETTER)
        assert (newsletter.planned, newsletter.warning) == (10, None)


def test_moving_skipping_and_adding_leave_the_others_alone(session: Session) -> None:
    with clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)):
        assert calendar.ensure_year(session, 2027, SETTINGS) == 22
        assert calendar.ensure_year(session, 2027, SETTINGS) == 0
        before = {v.id: v.send_at for v in calendar.year_view(session, 2027, SETTINGS)}
        ids = sorted(before)
        moved = calendar.move_slot(session, ids[4], _at("2027-03-05T11:00"), SETTINGS)
        calendar.skip_slot(session, ids[5], "conference week")
        extra = calendar.add_slot(session, Publication.BULLETIN, _at("2027-08-12T09:30"), SETTINGS)
        after = {v.id: v for v in calendar.year_view(session, 2027, SETTINGS)}
    assert moved.deadline_at.astimezone(LONDON) == datetime(2027, 3, 3, 17, 0, tzinfo=LONDON)
    assert after[ids[5]].status == "skipped"
    for slot_id, send_at in before.items():
        if slot_id not in (ids[4], ids[5]):
            assert after[slot_id].send_at == send_at
    assert after[extra.id or 0].number == "2027/23"
    bulletin = calendar.year_counts(list(after.values()), SETTINGS)[0]
    assert bulletin.planned == 22  # one skipped, one extra
    assert bulletin.warning is None


def test_a_year_off_target_is_warned_about(session: Session) -> None:
    with clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)):
        views = calendar.year_view(session, 2027, SETTINGS)
        calendar.skip_slot(session, views[0].id)
        counts = calendar.year_counts(calendar.year_view(session, 2027, SETTINGS), SETTINGS)
    assert counts[0].warning == "21 bulletins planned; the target is 22"


def test_an_approved_issue_pins_its_slot(session: Session) -> None:
    with clock.frozen(datetime(2027, 2, 1, tzinfo=UTC)):
        calendar.ensure_year(session, 2027, SETTINGS)
        issue = approved(session)  # bulletin 2027/05, 4 March 2027
        view = next(v for v in calendar.year_view(session, 2027, SETTINGS) if v.number == "2027/05")
        assert (view.status, view.issue_id) == ("approved", issue.id)
        with pytest.raises(CalendarError, match="reopen it"):
            calendar.move_slot(session, view.id, _at("2027-03-11T09:30"), SETTINGS)
        issues.reopen(session, issue)
        calendar.move_slot(session, view.id, _at("2027-03-11T09:30"), SETTINGS)
        assert issue.slot_at == _at("2027-03-11T09:30")
        with pytest.raises(CalendarError, match="in the future"):
            calendar.move_slot(session, view.id, _at("2027-01-11T09:30"), SETTINGS)
    assert issue.status is IssueStatus.DRAFT


def test_the_ics_export_has_a_send_and_a_deadline_event_per_slot(session: Session) -> None:
    with clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)):
        calendar.plan_newsletters(session, 2027, SETTINGS)
        views = calendar.year_view(session, 2027, SETTINGS)
        parsed = icalendar.Calendar.from_ical(calendar.to_ics(views, "lepnetwork.example"))
    events = [c for c in parsed.walk("VEVENT")]
    assert len(events) == 2 * 32
    first = next(e for e in events if str(e["summary"]).startswith("Bulletin 2027/01 goes out"))
    assert first.decoded("dtstart") == datetime(2027, 1, 7, 9, 30, tzinfo=UTC)
    assert len({str(e["uid"]) for e in events}) == len(events)


def test_slot_statuses_are_shown_as_staff_think_of_them(session: Session) -> None:
    with clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)):
        views = calendar.year_view(session, 2027, SETTINGS)
    assert {v.status for v in views} == {"planned"}
    with clock.frozen(datetime(2027, 2, 1, tzinfo=UTC)):
        views = calendar.year_view(session, 2028, SETTINGS)
        late = calendar.year_view(session, 2027, SETTINGS)
    assert {v.status for v in views} == {"planned"}
    assert [v.status for v in late][:2] == ["planned", "planned"]
    assert SlotStatus.MISSED.value == "missed"


def test_a_slot_moved_into_another_year_does_not_stop_that_year_being_planned(
    session: Session,
) -> None:
    with clock.frozen(datetime(2026, 10, 1, tzinfo=UTC)):
        first = calendar.year_view(session, 2027, SETTINGS)[0]
        calendar.move_slot(session, first.id, _at("2026-12-03T09:30"), SETTINGS)
        assert calendar.ensure_year(session, 2026, SETTINGS) == 22
        assert (
            len(
                [
                    v
                    for v in calendar.year_view(session, 2026, SETTINGS)
                    if v.number.startswith("2026/")
                ]
            )
            == 22
        )


def test_an_issue_takes_a_planned_slot_never_one_of_its_own(session: Session) -> None:
    # The newsletter file has a time, but no newsletter slot is planned yet.
    staff_accounts(session)
    document = issuefile.read(DATA / "newsletter.md", ZONE)  # 18 March 2027, 2027/03
    with (
        clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)),
        pytest.raises(editorial.SlotError) as refused,
    ):
        editorial.save(session, document, editor=EDITOR, settings=SETTINGS)
    assert "there is no newsletter slot at Thu 18 Mar 2027 10:00" in str(refused.value)
    assert "plan one with `mailer calendar add newsletter WHEN`" in str(refused.value)
    with clock.frozen(datetime(2026, 12, 1, tzinfo=UTC)):
        issue = drafted(session, "newsletter.md")  # plans the year first, as staff would
    assert (issue.number, issue.slot_at) == ("2027/03", _at("2027-03-18T10:00"))
    slot = session.exec(select(Slot).where(col(Slot.number) == "2027/03")).all()
    assert [(s.publication, s.origin) for s in slot if s.publication is issue.publication] == [
        (Publication.NEWSLETTER, "pattern")
    ]


def test_a_slot_just_past_when_first_planned_still_goes_out_within_grace(
    session: Session,
) -> None:
    with clock.frozen(_at("2027-01-07T10:00")):  # half an hour after the first bulletin's slot
        views = calendar.year_view(session, 2027, SETTINGS)
    assert views[0].status == "planned"


def test_slots_passed_before_the_installation_are_counted_apart_not_as_a_shortfall(
    session: Session,
) -> None:
    # Installed on 1 December 2026: every bulletin of 2026 has passed, none is short.
    with clock.frozen(datetime(2026, 12, 1, 12, tzinfo=UTC)):
        views = calendar.year_view(session, 2026, SETTINGS)
        bulletin = calendar.year_counts(views, SETTINGS)[0]
        assert all(v.before_setup and not v.changeable for v in views)
        assert (bulletin.planned, bulletin.before_setup, bulletin.warning) == (0, 22, None)
        # A slot staff skip still counts as a shortfall, installation or not.
        upcoming = calendar.year_view(session, 2027, SETTINGS)
        assert not any(v.before_setup for v in upcoming)
        calendar.skip_slot(session, upcoming[0].id, calendar.BEFORE_SETUP)
        skipped = calendar.year_view(session, 2027, SETTINGS)
        assert skipped[0].note == calendar.BEFORE_SETUP and not skipped[0].before_setup
        assert calendar.year_counts(skipped, SETTINGS)[0].warning == (
            "21 bulletins planned; the target is 22"
        )
    # Mid-year: the passed slots and the ones to come add up to the target.
    with clock.frozen(datetime(2028, 6, 1, tzinfo=UTC)):
        bulletin = calendar.year_counts(calendar.year_view(session, 2028, SETTINGS), SETTINGS)[0]
    assert bulletin.planned + bulletin.before_setup == 22 and bulletin.before_setup > 0
    assert bulletin.warning is None
