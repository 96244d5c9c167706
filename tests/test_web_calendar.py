"""The calendar page and the dashboard's counts over HTTP: moves, skips, extra slots and
planning with the CLI's rules and messages, errors at their field, the ICS feed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import calendar, clock
from mailer.models import AuditEntry, Publication, SlotStatus
from tests.web_fixtures import Site, build_site, csrf_of, login

INSTALLED = datetime(2026, 12, 1, 12, tzinfo=UTC)  # a fresh install in December: the clock
# stands there for each whole test


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Iterator[Site]:
    with clock.frozen(INSTALLED):
        yield build_site(engine, tmp_path)


def _client(site: Site, role: str) -> tuple[TestClient, str]:
    client = site.client()
    login(client, role)
    return client, csrf_of(client.get("/staff").text)


def _bulletins(site: Site, year: int) -> list[calendar.SlotView]:
    with Session(site.engine) as session:
        views = calendar.year_view(session, year, site.config.settings)
        session.commit()
    return [v for v in views if v.publication is Publication.BULLETIN]


def _field_error(html: str, field_id: str) -> str:
    """The error shown at a field: the input is marked and points at its message."""
    assert f'id="{field_id}"' in html
    tag = re.search(rf'<(?:input|select)[^>]*id="{field_id}"[^>]*>', html)
    assert tag and 'aria-invalid="true"' in tag.group(0), f"{field_id} is not marked invalid"
    message = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', html)
    assert message, f"no error at {field_id}"
    return message.group(1).replace("&#39;", "'")


def test_a_fresh_install_shows_passed_slots_as_before_it_not_as_a_red_alarm(site: Site) -> None:
    editor, _ = _client(site, "editor")
    dashboard = editor.get("/staff").text
    assert "target is 22" not in dashboard and 'class="error"' not in dashboard
    assert "22 passed before this installation" in dashboard
    shown = editor.get("/staff/calendar?year=2026").text
    assert shown.count("before this installation</span>") == 22
    assert 'class="error"' not in shown
    # An editor sees the calendar and the feed, but no form that changes it.
    assert "/move" not in shown and "Changing the calendar needs the approver role" in shown
    feed = editor.get("/staff/calendar.ics?year=2027")
    assert feed.headers["content-type"].startswith("text/calendar")
    parsed = icalendar.Calendar.from_ical(feed.content)
    assert len(list(parsed.walk("VEVENT"))) == 2 * 22
    assert 'href="/staff/calendar.ics?year=2027"' in editor.get("/staff/calendar?year=2027").text
    slot = _bulletins(site, 2027)[0]
    refused = editor.post(f"/staff/calendar/{slot.id}/move", data={"csrf": csrf_of(shown)})
    assert refused.status_code == 403


def test_an_approver_moves_skips_adds_and_plans_with_the_clis_rules(site: Site) -> None:
    approver, csrf = _client(site, "approver")
    first, second = _bulletins(site, 2027)[:2]
    move = f"/staff/calendar/{first.id}/move"
    # Refused with the CLI's message at the field, what was typed kept.
    past = approver.post(move, data={"csrf": csrf, "when": "2026-11-05T09:30"})
    assert past.status_code == 422
    assert _field_error(past.text, f"when-{first.id}") == (
        "a slot can only move to a time in the future"
    )
    assert 'value="2026-11-05T09:30"' in past.text
    garbled = approver.post(move, data={"csrf": csrf, "when": "soon"})
    assert _field_error(garbled.text, f"when-{first.id}") == (
        "time: expected a date and time like 2027-03-04T09:30, got 'soon'"
    )
    taken = second.send_at.astimezone(ZoneInfo("Europe/London"))
    clash = approver.post(move, data={"csrf": csrf, "when": f"{taken:%Y-%m-%dT%H:%M}"})
    assert "is already at that time" in _field_error(clash.text, f"when-{first.id}")
    moved = approver.post(move, data={"csrf": csrf, "when": "2027-01-08T11:00"})
    assert moved.status_code == 303
    page = approver.get(moved.headers["location"]).text
    assert "now goes out Fri 8 Jan 2027 11:00" in page

    skip = f"/staff/calendar/{second.id}/skip"
    assert approver.post(skip, data={"csrf": csrf, "note": "purdah"}).status_code == 303
    again = approver.post(skip, data={"csrf": csrf, "note": "twice"})
    assert again.status_code == 422  # from a page shown before: said in the slot's row
    assert (
        f'<p class="error" id="slot-{second.id}-error">slot {second.id} is skipped: only a '
        "planned slot can change</p>" in again.text
    )

    extra = {"csrf": csrf, "publication": "newsletter", "year": "2027"}
    added = approver.post("/staff/calendar/add", data={**extra, "when": "2027-06-24T10:00"})
    assert added.status_code == 303
    twice = approver.post("/staff/calendar/add", data={**extra, "when": "2027-06-24T10:00"})
    assert "is already at that time" in _field_error(twice.text, "add-when")
    assert 'value="2027-06-24T10:00"' in twice.text
    planned = approver.post("/staff/calendar/plan", data={"csrf": csrf, "year": "2027"})
    assert planned.status_code == 303
    assert "Planned 9 newsletters in 2027." in approver.get(planned.headers["location"]).text
    over = approver.post("/staff/calendar/add", data={**extra, "when": "2027-08-19T10:00"})
    assert _field_error(over.text, "add-when").startswith(
        "2027 already has 10 newsletters planned: the cap is 10 a year"
    )
    out_of_range = approver.post("/staff/calendar/plan", data={"csrf": csrf, "year": "1999"})
    assert out_of_range.status_code == 400
    after = {v.id: v for v in _bulletins(site, 2027)}
    assert after[first.id].send_at == datetime(2027, 1, 8, 11, tzinfo=UTC)
    assert after[second.id].status == SlotStatus.SKIPPED.value
    with Session(site.engine) as session:
        actions = session.exec(
            select(AuditEntry.action)
            .where(col(AuditEntry.actor) == "approver@lepnetwork.example")
            .where(col(AuditEntry.action).startswith("calendar:"))
            .order_by(col(AuditEntry.id))
        ).all()
    assert actions == ["calendar:move", "calendar:skip", "calendar:add", "calendar:plan"]
