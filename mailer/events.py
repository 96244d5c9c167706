"""The events diary: dated events for internal, external or both audiences; one event a
date and title.

Errors::

    EventError   an event's field is invalid or it is already in the diary (the message
                 names the field, or file and line; ``field`` says which form field)
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from mailer.db import get_by_id
from mailer.markup import single_line
from mailer.models import Event, EventAudience, Publication

WINDOW = timedelta(weeks=6)
REQUIRED_COLUMNS = ("date", "title")


class EventError(ValueError):
    """An event cannot be stored; ``field`` names the field at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class EventImport:
    added: int
    unchanged: int
    problems: tuple[str, ...]


def audiences_for(publication: Publication) -> tuple[EventAudience, ...]:
    """Which events a publication carries: internal ones only in the internal bulletin."""
    own = EventAudience.INTERNAL if publication.internal else EventAudience.EXTERNAL
    return (own, EventAudience.BOTH)


def check_link(link: str | None, field: str = "link") -> str | None:
    """An optional https link (readers follow it from an email: never plain http).

    :raises EventError: the link is not an https address.
    """
    if not link or not link.strip():
        return None
    link = link.strip()
    if (
        not link.lower().startswith("https://")
        or len(link) <= len("https://")
        or any(c.isspace() for c in link)
    ):
        raise EventError(f"{field}: expected an https address, got {link!r}", field)
    return link


def _text(value: str, field: str, *, required: bool = True) -> str:
    try:
        return single_line(value, field, required=required)
    except ValueError as exc:
        raise EventError(str(exc), field) from None


def _check_new(session: Session, starts_on: date, title: str, event_id: int | None = None) -> None:
    """:raises EventError: another event has this date and title (in any case)."""
    same_day = session.exec(
        select(Event).where(col(Event.starts_on) == starts_on, col(Event.id) != (event_id or 0))
    )
    for other in same_day:
        if other.title.casefold() == title.casefold():
            raise EventError(
                f"title: {other.title!r} on {starts_on.isoformat()} is already in the diary "
                f"(event {other.id})",
                "title",
            )


def get(session: Session, event_id: int) -> Event:
    """The event with this id.

    :raises EventError: there is none.
    """
    event = get_by_id(session, Event, event_id)
    if event is None:
        raise EventError(f"there is no event {event_id} (see `mailer events list --all`)")
    return event


def add(
    session: Session,
    starts_on: date,
    title: str,
    *,
    location: str = "",
    link: str | None = None,
    audience: EventAudience = EventAudience.BOTH,
) -> Event:
    """Add an event to the diary.

    :raises EventError: the title is empty, a field holds a line break, the link is not
        https, or an event with this date and title is already in the diary.
    """
    event = Event(
        starts_on=starts_on,
        title=_text(title, "title"),
        location=_text(location, "location", required=False),
        link=check_link(link),
        audience=audience,
    )
    _check_new(session, event.starts_on, event.title)
    session.add(event)
    session.flush()
    return event


def edit(
    session: Session,
    event_id: int,
    starts_on: date,
    title: str,
    *,
    location: str = "",
    link: str | None = None,
    audience: EventAudience = EventAudience.BOTH,
) -> Event:
    """Change every field of an event (issues not yet approved show it changed).

    :raises EventError: there is no such event, or as :func:`add`.
    """
    event = get(session, event_id)
    title = _text(title, "title")
    location = _text(location, "location", required=False)
    link = check_link(link)
    _check_new(session, starts_on, title, event.id)
    event.starts_on, event.title, event.location = starts_on, title, location
    event.link, event.audience = link, audience
    session.flush()
    return event


def delete(session: Session, event_id: int) -> Event:
    """Take an event out of the diary; returns it as it was.

    :raises EventError: there is no such event.
    """
    event = get(session, event_id)
    session.delete(event)
    session.flush()
    return event


def upcoming(session: Session, publication: Publication, start: date) -> Sequence[Event]:
    """Events from ``start`` for six weeks that ``publication``'s readers should see."""
    return session.exec(
        select(Event)
        .where(
            col(Event.starts_on) >= start,
            col(Event.starts_on) < start + WINDOW,
            col(Event.audience).in_(audiences_for(publication)),
        )
        .order_by(col(Event.starts_on), col(Event.id))
    ).all()


def listing(session: Session, start: date | None = None) -> Sequence[Event]:
    """Every event (from ``start`` if given), in date order."""
    query = select(Event).order_by(col(Event.starts_on), col(Event.id))
    if start is not None:
        query = query.where(col(Event.starts_on) >= start)
    return session.exec(query).all()


def import_csv(session: Session, path: Path) -> EventImport:
    """Import events from CSV (date, title, optional location, link, audience).

    Rows already in the diary (same date and title) are left alone; bad rows are reported
    with their line number and the good ones are added.

    :raises EventError: the file cannot be read or lacks a required column.
    """
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise EventError(f"{path}: cannot open: {exc.strerror}") from None
    added = unchanged = 0
    problems: list[str] = []
    existing = {(e.starts_on, e.title.casefold()) for e in session.exec(select(Event))}
    with handle:
        try:
            reader = csv.DictReader(handle)
            columns = [c.strip().casefold() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise EventError(f"{path}:1: missing column(s): {', '.join(missing)}")
            reader.fieldnames = columns
            for row in reader:
                line = reader.line_num
                try:
                    raw_date = (row.get("date") or "").strip()
                    try:
                        when = date.fromisoformat(raw_date)
                    except ValueError:
                        raise EventError(
                            f"date: expected YYYY-MM-DD, got {raw_date!r}", "date"
                        ) from None
                    raw_audience = (row.get("audience") or "both").strip().casefold()
                    try:
                        audience = EventAudience(raw_audience)
                    except ValueError:
                        raise EventError(
                            f"audience: expected internal, external or both, got {raw_audience!r}"
                        ) from None
                    title = _text(row.get("title") or "", "title")
                    if (when, title.casefold()) in existing:
                        unchanged += 1
                        continue
                    add(
                        session,
                        when,
                        title,
                        location=row.get("location") or "",
                        link=row.get("link"),
                        audience=audience,
                    )
                    existing.add((when, title.casefold()))
                    added += 1
                except EventError as exc:
                    problems.append(f"line {line}: {exc}")
        except (csv.Error, UnicodeDecodeError) as exc:
            raise EventError(f"{path}: cannot read: {exc}") from None
    return EventImport(added=added, unchanged=unchanged, problems=tuple(problems))
