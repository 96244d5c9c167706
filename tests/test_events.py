"""The events diary: added, listed, imported with line-numbered errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session

from mailer import events
from mailer.models import EventAudience, Publication
from tests.helpers import write_csv


def test_each_publication_sees_its_own_audience(session: Session) -> None:
    events.add(session, date(2027, 3, 10), "Both", audience=EventAudience.BOTH)
    events.add(session, date(2027, 3, 11), "LEPs only", audience=EventAudience.INTERNAL)
    events.add(session, date(2027, 3, 12), "Stakeholders", audience=EventAudience.EXTERNAL)
    start = date(2027, 3, 1)
    assert [e.title for e in events.upcoming(session, Publication.BULLETIN, start)] == [
        "Both",
        "LEPs only",
    ]
    assert [e.title for e in events.upcoming(session, Publication.NEWSLETTER, start)] == [
        "Both",
        "Stakeholders",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": "  "}, "title: must not be empty"),
        ({"title": "A\r\nB"}, "title: a line break"),
        ({"title": "Ok", "link": "javascript:alert(1)"}, "link: expected an https address"),
        ({"title": "Ok", "link": "http://plain.example"}, "link: expected an https address"),
        ({"title": "Ok", "location": "x\ny"}, "location: a line break"),
    ],
)
def test_bad_fields_are_refused_by_name(
    session: Session, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(events.EventError, match=message):
        events.add(session, date(2027, 3, 10), **kwargs)  # type: ignore[arg-type]


def test_import_reports_bad_rows_and_skips_known_events(session: Session, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "events.csv",
        "date,title,location,link,audience\n"
        "2027-03-10,LEP Network conference,London,https://conf.example,both\n"
        "10/03/2027,Bad date,,,both\n"
        "2027-03-11,Bad audience,,,everyone\n"
        "2027-03-12,Bad link,,ftp://x.example,internal\n"
        "2027-03-13,CEO meeting,Birmingham,,internal\n",
    )
    first = events.import_csv(session, path)
    assert (first.added, first.unchanged) == (2, 0)
    assert first.problems == (
        "line 3: date: expected YYYY-MM-DD, got '10/03/2027'",
        "line 4: audience: expected internal, external or both, got 'everyone'",
        "line 5: link: expected an https address, got 'ftp://x.example'",
    )
    again = events.import_csv(session, path)
    assert (again.added, again.unchanged) == (0, 2)
    assert [e.title for e in events.listing(session)] == ["LEP Network conference", "CEO meeting"]


def test_a_file_without_the_columns_is_refused(session: Session, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "e.csv", "when,what\n2027-03-10,x\n")
    with pytest.raises(events.EventError, match=r"e.csv:1: missing column\(s\): date, title"):
        events.import_csv(session, path)
    with pytest.raises(events.EventError, match="cannot open"):
        events.import_csv(session, tmp_path / "absent.csv")


def test_one_event_a_date_and_title_and_edits_and_deletes_keep_it_so(session: Session) -> None:
    # The same event added twice (in another case) is refused; so is an edit onto another.
    first = events.add(session, date(2027, 3, 10), "LEP Network conference")
    with pytest.raises(events.EventError, match="already in the diary") as twice:
        events.add(session, date(2027, 3, 10), " lep network Conference ")
    assert twice.value.field == "title"
    other = events.add(session, date(2027, 3, 11), "LEP Network conference")
    with pytest.raises(events.EventError, match=f"already in the diary \\(event {first.id}\\)"):
        events.edit(session, other.id or 0, date(2027, 3, 10), "LEP Network Conference")
    changed = events.edit(
        session,
        other.id or 0,
        date(2027, 3, 12),
        "Day two",
        location="London",
        link="https://conf.example/day-two",
        audience=EventAudience.INTERNAL,
    )
    assert (changed.title, changed.link, changed.audience) == (
        "Day two",
        "https://conf.example/day-two",
        EventAudience.INTERNAL,
    )
    with pytest.raises(events.EventError, match="link: expected an https address") as http:
        events.edit(session, other.id or 0, date(2027, 3, 12), "Day two", link="http://x.example")
    assert http.value.field == "link"
    assert events.delete(session, first.id or 0).title == "LEP Network conference"
    assert [e.title for e in events.listing(session)] == ["Day two"]
    with pytest.raises(events.EventError, match="there is no event"):
        events.delete(session, first.id or 0)
