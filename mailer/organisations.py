"""Organisations: the 38 LEPs and external stakeholders, loaded from ``lists/`` and looked up.

Errors::

    OrganisationError   a list file row or a new organisation is invalid
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer.models import Contact, Organisation, OrganisationKind

LEPS_FILE = "leps.csv"
EXTERNAL_FILE = "organisations.csv"


class OrganisationError(Exception):
    """An organisation cannot be stored; the message names the file and line or field."""


@dataclass(frozen=True)
class LoadResult:
    added: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class OrganisationSummary:
    organisation: Organisation
    contacts: int


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def _fields(
    row: dict[str, str], *, path: Path, line: int, kind: OrganisationKind | None
) -> dict[str, str | None]:
    name = (row.get("name") or "").strip()
    if not name:
        raise OrganisationError(f"{path}:{line}: name is empty")
    raw_kind = (row.get("kind") or "").strip() if kind is None else kind.value
    try:
        parsed_kind = OrganisationKind(raw_kind)
    except ValueError:
        expected = ", ".join(k.value for k in OrganisationKind)
        raise OrganisationError(
            f"{path}:{line}: unknown kind {raw_kind!r} (expected one of: {expected})"
        ) from None
    if kind is None and parsed_kind is OrganisationKind.LEP:
        raise OrganisationError(
            f"{path}:{line}: kind 'lep' belongs in {LEPS_FILE}, the one list of LEPs"
        )
    return {
        "name": name,
        "short_name": (row.get("short_name") or "").strip() or None,
        "kind": parsed_kind.value,
        "board_group": (row.get("board_group") or "").strip() or None,
        "website": (row.get("website") or "").strip() or None,
    }


def _read(path: Path, kind: OrganisationKind | None) -> list[dict[str, str | None]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                rows.append(_fields(row, path=path, line=reader.line_num, kind=kind))
            return rows
    except FileNotFoundError as exc:
        raise OrganisationError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OrganisationError(f"{path}: cannot read: {exc}") from exc


def upsert(session: Session, rows: Iterable[dict[str, str | None]]) -> LoadResult:
    """Add organisations that are new (by name) and update those that changed."""
    existing = {_key(o.name): o for o in session.exec(select(Organisation))}
    added = updated = unchanged = 0
    for row in rows:
        name = row["name"]
        assert name is not None
        found = existing.get(_key(name))
        if found is None:
            organisation = Organisation.model_validate(row)
            session.add(organisation)
            existing[_key(name)] = organisation
            added += 1
            continue
        changed = False
        for field, value in row.items():
            current = getattr(found, field)
            if (None if current is None else str(current)) != value:
                setattr(found, field, OrganisationKind(str(value)) if field == "kind" else value)
                changed = True
        updated += changed
        unchanged += not changed
    session.flush()
    return LoadResult(added=added, updated=updated, unchanged=unchanged)


def load_lists(session: Session, lists_dir: Path) -> LoadResult:
    """Load ``leps.csv`` (every row a LEP) and ``organisations.csv`` (external ones).

    :raises OrganisationError: a file is missing or a row is invalid; nothing is written.
    """
    leps = _read(lists_dir / LEPS_FILE, OrganisationKind.LEP)
    external_path = lists_dir / EXTERNAL_FILE
    external = _read(external_path, None) if external_path.exists() else []
    return upsert(session, [*leps, *external])


def add(
    session: Session,
    name: str,
    kind: OrganisationKind,
    *,
    short_name: str | None = None,
    website: str | None = None,
    board_group: str | None = None,
) -> Organisation:
    """Add one organisation.

    :raises OrganisationError: the name or short name is taken, or a field is empty.
    """
    name = " ".join(name.split())
    if not name:
        raise OrganisationError("name: must not be empty")
    for existing in session.exec(select(Organisation)):
        if _key(existing.name) == _key(name) or (
            short_name and existing.short_name and _key(existing.short_name) == _key(short_name)
        ):
            raise OrganisationError(f"name: {existing.name!r} already exists")
    organisation = Organisation(
        name=name,
        kind=kind,
        short_name=short_name or None,
        website=website or None,
        board_group=board_group or None,
    )
    session.add(organisation)
    session.flush()
    return organisation


class Directory:
    """Organisations by name or short name, case-insensitively, for fast lookups."""

    def __init__(self, organisations: Sequence[Organisation]) -> None:
        self._by_key: dict[str, Organisation] = {}
        for organisation in organisations:
            self._by_key[_key(organisation.name)] = organisation
            if organisation.short_name:
                self._by_key.setdefault(_key(organisation.short_name), organisation)

    @classmethod
    def load(cls, session: Session) -> Directory:
        return cls(list(session.exec(select(Organisation))))

    def find(self, text: str) -> Organisation | None:
        return self._by_key.get(_key(text))

    def suggest(self, text: str) -> str | None:
        """The closest known name, for a helpful error message."""
        matches = difflib.get_close_matches(_key(text), list(self._by_key), n=1, cutoff=0.75)
        if not matches:
            return None
        return self._by_key[matches[0]].name


def summaries(session: Session, kind: OrganisationKind | None = None) -> list[OrganisationSummary]:
    """Every organisation with its number of contacts, LEPs first, then by name."""
    counts = (
        select(Contact.organisation_id, sa.func.count().label("n"))
        .group_by(col(Contact.organisation_id))
        .subquery()
    )
    query = (
        select(Organisation, sa.func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.organisation_id == Organisation.id)
        .order_by(col(Organisation.kind) != OrganisationKind.LEP, col(Organisation.name))
    )
    if kind is not None:
        query = query.where(Organisation.kind == kind)
    return [OrganisationSummary(org, int(n)) for org, n in session.exec(query)]
