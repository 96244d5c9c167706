"""The events diary over HTTP: add, edit and delete (audited); duplicates and http links are
refused by the domain, at their field, with what was typed kept."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import events
from mailer.models import AuditEntry, EventAudience
from tests.web_fixtures import build_site, csrf_of, login


def _error_at(html: str, field: str) -> str:
    tag = re.search(rf'<(?:input|select)[^>]*id="event-{field}"[^>]*>', html)
    assert tag and 'aria-invalid="true"' in tag.group(0), f"{field} is not marked invalid"
    found = re.search(rf'<p class="error" id="event-{field}-error">([^<]*)</p>', html)
    assert found, f"no error at {field}"
    return found.group(1).replace("&#39;", "'")


def test_staff_add_edit_and_delete_events_and_duplicates_and_http_are_refused(
    engine: Engine, tmp_path: Path
) -> None:
    site = build_site(engine, tmp_path)
    client = site.client()
    login(client, "editor")
    csrf = csrf_of(client.get("/staff/events").text)
    event = {"csrf": csrf, "when": "2027-03-10", "title": "LEP Network conference"}
    event |= {"location": "London", "link": "https://conf.example", "audience": "both"}
    assert client.post("/staff/events", data=event).status_code == 303
    twice = client.post("/staff/events", data={**event, "title": "LEP network Conference"})
    assert twice.status_code == 422
    assert "is already in the diary" in _error_at(twice.text, "title")
    plain = client.post(
        "/staff/events", data={**event, "title": "Skills fair", "link": "http://fair.example"}
    )
    assert _error_at(plain.text, "link") == (
        "link: expected an https address, got 'http://fair.example'"
    )
    assert 'value="Skills fair"' in plain.text and 'value="http://fair.example"' in plain.text

    with Session(site.engine) as session:
        (stored,) = events.listing(session)
    form = client.get(f"/staff/events/{stored.id}")
    assert 'value="LEP Network conference"' in form.text
    edit = f"/staff/events/{stored.id}"
    changed = {**event, "when": "2027-03-11", "title": "Conference day", "audience": "internal"}
    assert client.post(edit, data=changed).status_code == 303
    assert client.post("/staff/events", data=event).status_code == 303  # the old date is free
    onto = client.post(edit, data={**changed, "when": "2027-03-10", "title": event["title"]})
    assert "is already in the diary" in _error_at(onto.text, "title")
    insecure = client.post(edit, data={**changed, "link": "http://conf.example"})
    assert "expected an https address" in _error_at(insecure.text, "link")
    with Session(site.engine) as session:
        kept = events.get(session, stored.id or 0)
        assert (kept.title, kept.audience, kept.link) == (
            "Conference day",
            EventAudience.INTERNAL,
            "https://conf.example",
        )
    deleted = client.post(f"/staff/events/{stored.id}/delete", data={"csrf": csrf})
    assert deleted.status_code == 303
    assert "Deleted the event Conference day" in client.get("/staff/events").text
    assert client.get(f"/staff/events/{stored.id}").status_code == 404
    with Session(site.engine) as session:
        assert [e.title for e in events.listing(session)] == ["LEP Network conference"]
        audited = session.exec(
            select(AuditEntry.action, AuditEntry.target)
            .where(col(AuditEntry.action).startswith("event:"))
            .order_by(col(AuditEntry.id))
        ).all()
    assert [a for a, _ in audited] == ["event:add", "event:edit", "event:add", "event:delete"]
    assert audited[1][1] == audited[3][1] == f"event {stored.id}"
