"""Contact CSV import: read the file, check every row, write all valid rows in one transaction.

A file in UTF-8 (with or without BOM) or Windows-1252, separated by commas,
semicolons or tabs. Each rejected row is reported with its line number, the
field at fault and why; the valid rows are written together or not at all.
Importing the same file twice changes nothing. An import may make an existing
contact's status stricter (active, then disabled, then suppressed), never looser,
and never revives a subscription the reader ended.

Errors::

    ImportFileError   the file itself cannot be read (missing, binary, bad header, bad CSV)
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import NamedTuple, TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from mailer import audiences, audit, clock
from mailer.contacts import (
    ContactFieldError,
    clean_name,
    email_hash,
    from_spreadsheet_cell,
    move,
    normalise_email,
    parse_lawful_basis,
    parse_publications,
    parse_role,
    to_spreadsheet_cell,
)
from mailer.db import among, driver_value, insert_many, lookups_by_index
from mailer.models import (
    Contact,
    ContactStatus,
    LawfulBasis,
    Organisation,
    Publication,
    Role,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from mailer.organisations import Directory, OrganisationError, default_basis

REQUIRED_COLUMNS = ("email", "name", "organisation", "role")
OPTIONAL_COLUMNS = (
    "lawful_basis",
    "consented_at",
    "source",
    "publications",
    "consent_wording",
    "status",
    "unsubscribed",
)
_HEADER_ALIASES = {
    "e mail": "email",
    "email address": "email",
    "full name": "name",
    "organization": "organisation",
    "org": "organisation",
    "job role": "role",
}
_EARLIEST = date(2000, 1, 1)
_CHUNK = 1 << 20
_SOURCE_MAX = 200
_WORDING_MAX = 60
# How strict a status is: an import may move a contact up this scale, never down.
_STRICTNESS = {ContactStatus.ACTIVE: 0, ContactStatus.DISABLED: 1, ContactStatus.SUPPRESSED: 2}
_SUPPRESSED_REASON = "the address is suppressed (bounced, complained, or asked to be erased)"


class ImportFileError(Exception):
    """The file cannot be read as a contacts CSV; nothing was written."""


@dataclass(frozen=True)
class RowProblem:
    """A row that was not written, with the field at fault and why."""

    line: int
    email: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did (or, with dry_run, would do)."""

    path: Path
    encoding: str
    dry_run: bool
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the audit log."""
        return (
            f"{self.rows} rows: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped, "
            f"{len(self.rejected)} rejected"
        )


class Sniffed(NamedTuple):
    """What :func:`sniff` found: the encoding, the number of lines, and the first line
    that is not UTF-8 (when the file was read as Windows-1252 instead)."""

    encoding: str
    lines: int
    not_utf8_line: int | None = None


@dataclass(frozen=True)
class _Row:
    """A row whose every field was understood."""

    line: int
    email: str
    name: str
    organisation_id: int
    role: Role
    lawful_basis: LawfulBasis
    explicit_basis: bool
    consented_at: datetime | None
    source: str | None
    consent_wording: str | None
    publications: frozenset[Publication]
    explicit_publications: bool
    ended: frozenset[Publication]
    status: ContactStatus


class _RowRejected(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def sniff(path: Path) -> Sniffed:
    """The file's encoding (``utf-8-sig``, ``utf-8`` or ``cp1252``) and its number of lines.

    When UTF-8 fails, the result also names the first line that is not UTF-8.

    :raises ImportFileError: the file is missing, binary, UTF-16, or neither encoding.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot open: {exc.strerror}") from None
    with handle:
        head = handle.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ImportFileError(
                f"{path}: the file is UTF-16; save it as 'CSV UTF-8' or 'CSV (Comma delimited)'"
            )
        candidates = ["utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8", "cp1252"]
        not_utf8_line: int | None = None
        for encoding in candidates:
            handle.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)()
            lines = 0
            try:
                while chunk := handle.read(_CHUNK):
                    if b"\x00" in chunk:
                        line = lines + chunk[: chunk.index(b"\x00")].count(b"\n") + 1
                        raise ImportFileError(
                            f"{path}:{line}: NUL byte: this is not a text CSV file"
                        )
                    decoder.decode(chunk)
                    lines += chunk.count(b"\n")
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                if not_utf8_line is None:
                    # exc.object is the decoder's few held-back bytes (never a newline)
                    # followed by the chunk being decoded.
                    not_utf8_line = lines + exc.object[: exc.start].count(b"\n") + 1
                continue
            return Sniffed(encoding, lines, not_utf8_line)
    raise ImportFileError(f"{path}: the file is neither UTF-8 nor Windows-1252 text")


def _column_key(text: str) -> str:
    key = " ".join(re.split(r"[\s_\-]+", text.strip().casefold())).strip()
    return _HEADER_ALIASES.get(key, key.replace(" ", "_"))


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in ",;\t"}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _parse_when(raw: str, zone: ZoneInfo) -> datetime | None:
    """A consent date or time; without an offset, local time in ``zone``."""
    text = raw.strip()
    if not text:
        return None
    parsed: datetime | None = None
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text)
    try:
        if match:
            day, month, year = (int(g) for g in match.groups())
            parsed = datetime.combine(date(year, month, day), time(0), tzinfo=zone)
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            parsed = datetime.combine(date.fromisoformat(text), time(0), tzinfo=zone)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
        too_early = parsed < datetime.combine(_EARLIEST, time(0), tzinfo=zone)
        in_future = parsed > clock.now()
    except (ValueError, OverflowError):
        raise _RowRejected(
            "consented_at",
            f"cannot read {text!r} as a date (use 2025-03-31, 31/03/2025 or 2025-03-31T09:30)",
        ) from None
    if too_early:
        raise _RowRejected("consented_at", f"{text!r} is before 2000-01-01: check the year")
    if in_future:
        raise _RowRejected("consented_at", f"{text!r} is in the future")
    return parsed


def _parse_text(cells: dict[str, str], column: str, limit: int) -> str | None:
    text = cells.get(column, "").strip()
    if len(text) > limit:
        raise _RowRejected(column, f"{column} is longer than {limit} characters ({len(text)})")
    return text or None


def _parse_status(raw: str) -> ContactStatus:
    text = raw.strip().casefold()
    if not text:
        return ContactStatus.ACTIVE
    allowed = (ContactStatus.ACTIVE, ContactStatus.DISABLED, ContactStatus.SUPPRESSED)
    for status in allowed:
        if status.value == text:
            return status
    raise _RowRejected(
        "status", f"unknown status {raw.strip()!r} (expected active, disabled or suppressed)"
    )


class _Reader:
    """Turns CSV records into checked rows; keeps track of addresses seen."""

    def __init__(self, directory: Directory, zone: ZoneInfo) -> None:
        self.directory = directory
        self.zone = zone
        self.seen: dict[str, int] = {}

    def check(self, line: int, cells: dict[str, str]) -> _Row:
        try:
            email = normalise_email(cells["email"])
        except ContactFieldError as exc:
            raise _RowRejected("email", str(exc)) from None
        if email in self.seen:
            raise _RowRejected("email", f"{email} is a duplicate of line {self.seen[email]}")
        try:
            name = clean_name(cells["name"])
        except ContactFieldError as exc:
            raise _RowRejected("name", str(exc)) from None
        org_text = cells["organisation"].strip()
        if not org_text:
            raise _RowRejected("organisation", "organisation is empty")
        try:
            organisation = self.directory.named(org_text)
        except OrganisationError as exc:
            raise _RowRejected("organisation", str(exc)) from None
        assert organisation.id is not None
        try:
            role = parse_role(cells["role"])
        except ContactFieldError as exc:
            raise _RowRejected("role", str(exc)) from None
        try:
            basis = parse_lawful_basis(cells.get("lawful_basis", ""))
        except ContactFieldError as exc:
            raise _RowRejected("lawful_basis", str(exc)) from None
        if basis is None and default_basis(organisation.kind) is None:
            raise _RowRejected(
                "lawful_basis",
                f"{organisation.name} is not a LEP: an external contact needs a lawful_basis "
                "(consent or legitimate_interest)",
            )
        consented_at = _parse_when(cells.get("consented_at", ""), self.zone)
        if basis is LawfulBasis.CONSENT and consented_at is None:
            raise _RowRejected("consented_at", "consent needs the date it was given")
        try:
            publications = parse_publications(cells.get("publications", ""))
        except ContactFieldError as exc:
            raise _RowRejected("publications", str(exc)) from None
        try:
            ended = parse_publications(cells.get("unsubscribed", "")) or frozenset()
        except ContactFieldError as exc:
            raise _RowRejected("unsubscribed", str(exc)) from None
        explicit_publications = publications is not None
        offered = audiences.receivable(organisation.kind)
        if publications is None:
            publications = offered - ended
        both = sorted(p.value for p in publications & ended)
        if both:
            raise _RowRejected(
                "unsubscribed",
                f"{' and '.join(both)} is both in publications and unsubscribed",
            )
        refused = sorted(p.value for p in publications if p not in offered)
        if refused:
            raise _RowRejected(
                "publications",
                f"the {', '.join(refused)} is internal: only contacts of LEPs may receive it "
                f"({organisation.name} is {organisation.kind.value.replace('_', ' ')})",
            )
        source = _parse_text(cells, "source", _SOURCE_MAX)
        wording = _parse_text(cells, "consent_wording", _WORDING_MAX)
        status = _parse_status(cells.get("status", ""))
        self.seen[email] = line
        return _Row(
            line=line,
            email=email,
            name=name,
            organisation_id=organisation.id,
            role=role,
            lawful_basis=basis or default_basis(organisation.kind) or LawfulBasis.CONSENT,
            explicit_basis=basis is not None,
            consented_at=consented_at,
            source=source,
            consent_wording=wording,
            publications=publications,
            explicit_publications=explicit_publications,
            ended=ended,
            status=status,
        )


def _records(path: Path, encoding: str) -> Iterator[tuple[int, list[str] | None, list[str] | None]]:
    """Yield (line, header, None) once, then (line, None, record) for each non-blank record."""
    with path.open(encoding=encoding, newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        reader = csv.reader(handle, delimiter=_delimiter(first))
        line = 1
        try:
            header = next(reader, None)
            if header is None:
                raise ImportFileError(f"{path}: the file is empty")
            yield 1, header, None
            line = reader.line_num + 1
            for record in reader:
                start, line = line, reader.line_num + 1
                if any(cell.strip() for cell in record):
                    yield start, None, record
        except csv.Error as exc:
            raise ImportFileError(f"{path}:{line}: malformed CSV: {exc}") from None


_CONTACT_COLUMNS = (
    "email",
    "email_hash",
    "name",
    "organisation_id",
    "role",
    "status",
    "lawful_basis",
    "consent_source",
    "consented_at",
    "consent_wording_version",
    "created_at",
    "updated_at",
)


class _OnFile(NamedTuple):
    """What an import compares of a contact already on file: plain values, no ORM object
    (an ORM object is loaded only for a contact the import changes)."""

    id: int
    email: str
    email_hash: str
    name: str
    organisation_id: int
    role: Role
    lawful_basis: LawfulBasis
    consented_at: datetime | None
    status: ContactStatus


def _stricter(row: _Row, contact: _OnFile | Contact) -> bool:
    """The row asks for a stricter status than the contact has (never a looser one)."""
    current = _STRICTNESS.get(contact.status)
    return current is not None and _STRICTNESS[row.status] > current


def _differences(row: _Row, contact: _OnFile, subscribed: set[Publication]) -> list[str]:
    differs = []
    if contact.name != row.name:
        differs.append("name")
    if contact.organisation_id != row.organisation_id:
        differs.append("organisation")
    if contact.role != row.role:
        differs.append("role")
    if row.explicit_basis and contact.lawful_basis != row.lawful_basis:
        differs.append("lawful_basis")
    if row.consented_at is not None and contact.consented_at != row.consented_at:
        differs.append("consented_at")
    if row.explicit_publications and row.publications - subscribed:
        differs.append("publications")
    if _stricter(row, contact):
        differs.append("status")
    return differs


def _table(model: type[SQLModel]) -> sa.Table:
    table = model.metadata.tables[str(model.__tablename__)]
    return table


class _Writer:
    """Writes checked rows in batches inside the caller's transaction."""

    def __init__(self, session: Session, report: ImportReport, update: bool, source: str) -> None:
        self.session = session
        self.report = report
        self.update = update
        self.default_source = source
        self.now = clock.now()
        self.hashes: dict[str, str] = {}  # the batch's addresses' hashes, worked out once

    def write(self, rows: list[_Row]) -> None:
        session = self.session
        connection = session.connection()
        emails = [r.email for r in rows]
        self.hashes = {email: email_hash(email) for email in emails}
        suppressed = set(
            session.execute(
                sa.select(col(Suppression.email_hash)).where(
                    among(connection, _table(Suppression).c.email_hash, self.hashes.values())
                )
            ).scalars()
        )
        table = _table(Contact)
        existing = {
            found.email: found
            for found in map(
                _OnFile._make,
                session.execute(
                    sa.select(*(table.c[name] for name in _OnFile._fields)).where(
                        among(connection, table.c.email, emails)
                    )
                ),
            )
        }
        subscribed: dict[int, set[Publication]] = {}
        if existing:
            ids = [c.id for c in existing.values()]
            for contact_id, publication in session.execute(
                sa.select(col(Subscription.contact_id), col(Subscription.publication)).where(
                    among(connection, _table(Subscription).c.contact_id, ids)
                )
            ):
                subscribed.setdefault(contact_id, set()).add(publication)
        new: list[_Row] = []
        for row in rows:
            contact = existing.get(row.email)
            is_suppressed = self.hashes[row.email] in suppressed
            # Refused: an address suppressed with no contact left (an erased person).
            # A contact still on file is compared as usual: its status can only get stricter.
            if (contact is None and is_suppressed) or (
                contact is not None and contact.status is ContactStatus.ERASED
            ):
                self.report.rejected.append(
                    RowProblem(row.line, row.email, "email", _SUPPRESSED_REASON)
                )
                continue
            if contact is None:
                new.append(row)
                continue
            have = subscribed.get(contact.id, set())
            differs = _differences(row, contact, have)
            if not differs:
                self.report.unchanged += 1
            elif self.update:
                on_file = session.get(Contact, contact.id)
                assert on_file is not None
                self._update(row, on_file, have, is_suppressed)
                self.report.updated += 1
            else:
                self.report.skipped.append(
                    RowProblem(
                        row.line,
                        row.email,
                        ", ".join(differs),
                        "already in the database with other values; --update applies them",
                    )
                )
        if new:
            self._insert(new)

    def _insert(self, rows: list[_Row]) -> None:
        connection = self.session.connection()
        contacts = _table(Contact)

        def value(table: sa.Table, column: str, raw: object) -> object:
            return driver_value(connection, table.c[column], raw)

        now = value(contacts, "created_at", self.now)
        insert_many(
            connection,
            contacts,
            _CONTACT_COLUMNS,
            [
                (
                    r.email,
                    self.hashes[r.email],
                    r.name,
                    r.organisation_id,
                    r.role.value,
                    r.status.value,
                    r.lawful_basis.value,
                    r.source or self.default_source,
                    value(contacts, "consented_at", r.consented_at),
                    r.consent_wording,
                    now,
                    now,
                )
                for r in rows
            ],
        )
        ids: dict[str, int] = {
            email: contact_id
            for email, contact_id in self.session.execute(
                sa.select(contacts.c.email, contacts.c.id).where(
                    among(connection, contacts.c.email, [r.email for r in rows])
                )
            )
        }
        active, ended = SubscriptionStatus.ACTIVE.value, SubscriptionStatus.UNSUBSCRIBED.value
        insert_many(
            connection,
            _table(Subscription),
            ("contact_id", "publication", "status", "created_at", "updated_at"),
            [
                (
                    ids[r.email],
                    publication.value,
                    ended if publication in r.ended else active,
                    now,
                    now,
                )
                for r in rows
                for publication in sorted(r.publications | r.ended)
            ],
        )
        insert_many(
            connection,
            _table(Suppression),
            ("email_hash", "reason", "created_at"),
            [
                (self.hashes[r.email], SuppressionReason.MANUAL.value, now)
                for r in rows
                if r.status is ContactStatus.SUPPRESSED
            ],
        )
        self.report.added += len(rows)

    def _update(
        self, row: _Row, contact: Contact, have: set[Publication], suppressed: bool
    ) -> None:
        if _stricter(row, contact):
            contact.status = row.status
            if row.status is ContactStatus.SUPPRESSED and not suppressed:
                self.session.add(
                    Suppression(
                        email_hash=contact.email_hash,
                        reason=SuppressionReason.MANUAL,
                        created_at=self.now,
                    )
                )
        contact.name = row.name
        contact.role = row.role
        if row.explicit_basis:
            contact.lawful_basis = row.lawful_basis
        if row.consented_at is not None:
            contact.consented_at = row.consented_at
        if row.source:
            contact.consent_source = row.source
        if row.consent_wording:
            contact.consent_wording_version = row.consent_wording
        contact.updated_at = self.now
        # Import adds subscriptions; it never revives one the reader ended.
        for publication in sorted(row.publications - have if row.explicit_publications else ()):
            assert contact.id is not None
            self.session.add(
                Subscription(
                    contact_id=contact.id,
                    publication=publication,
                    status=SubscriptionStatus.ACTIVE,
                    created_at=self.now,
                    updated_at=self.now,
                )
            )
        organisation = self.session.get(Organisation, row.organisation_id)
        assert organisation is not None
        # The firewall ends what the new organisation may not receive.
        move(
            self.session,
            contact,
            organisation,
            actor=self.default_source,
            subscribe=not row.explicit_publications,
        )


@dataclass(frozen=True)
class _Header:
    """The header row understood: a key per column ("" for a column with no name)."""

    columns: list[str]
    unnamed: list[int]


def _column_label(index: int) -> str:
    """``column 5 (E)``: the 1-based number and the spreadsheet letter of a column."""
    letters, n = "", index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"column {index + 1} ({letters})"


def _read_header(path: Path, header: list[str]) -> _Header:
    """The columns of the header row.

    :raises ImportFileError: a required column is missing or a known column is named twice.
    """
    columns = [_column_key(h) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(h.strip() for h in header if h.strip()) or "nothing"
        raise ImportFileError(
            f"{path}:1: missing column(s): {', '.join(missing)} (the header row has: {found})"
        )
    known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
    repeated = []
    for key in known:
        where = [i for i, c in enumerate(columns) if c == key]
        if len(where) > 1:
            named = ", ".join(f"{header[i].strip()!r} ({_column_label(i)})" for i in where)
            repeated.append((where[0], f"{key} is named more than once: {named}"))
    if repeated:
        raise ImportFileError(f"{path}:1: " + "; ".join(text for _, text in sorted(repeated)))
    return _Header(columns, [i for i, c in enumerate(columns) if not c])


def import_contacts(
    session: Session,
    path: Path,
    *,
    zone: ZoneInfo,
    dry_run: bool = False,
    update: bool = False,
    source: str | None = None,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import contacts from a CSV file; commit the valid rows, or with ``dry_run`` nothing.

    Dates without an offset are local time in ``zone`` (``[calendar] timezone``).
    ``progress(line, total_lines)`` is called after each batch. A column with no name in
    the header row is ignored when it is empty all the way down.

    :raises ImportFileError: the file cannot be read, a column is missing or named twice,
        or a column with no name holds a value; nothing is written.
    :raises ValueError: ``source`` is longer than 200 characters.
    """
    if source is not None and len(source) > _SOURCE_MAX:
        raise ValueError(f"source is longer than {_SOURCE_MAX} characters")
    sniffed = sniff(path)
    encoding, total_lines = sniffed.encoding, sniffed.lines
    report = ImportReport(path=path, encoding=encoding, dry_run=dry_run)
    if sniffed.not_utf8_line is not None:
        report.warnings.append(
            f"line {sniffed.not_utf8_line} is not UTF-8; the file was read as Windows-1252: "
            "check accented names"
        )
    default_source = source or f"import:{path.name}"[:_SOURCE_MAX]
    lookups_by_index(session.connection())
    reader = _Reader(Directory.load(session), zone)
    writer = _Writer(session, report, update, default_source)
    header = _Header([], [])
    batch: list[_Row] = []
    last_line = 0
    try:
        for line, header_cells, record in _records(path, encoding):
            if header_cells is not None:
                header = _read_header(path, header_cells)
                report.ignored_columns = tuple(
                    c
                    for c in header.columns
                    if c and c not in {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
                )
                continue
            assert record is not None
            columns = header.columns
            report.rows += 1
            last_line = line
            if len(record) != len(columns):
                email_at = columns.index("email")
                report.rejected.append(
                    RowProblem(
                        line,
                        record[email_at].strip() if email_at < len(record) else "",
                        "(row)",
                        f"expected {len(columns)} fields, found {len(record)}"
                        + (" (an unquoted comma?)" if len(record) > len(columns) else ""),
                    )
                )
                continue
            for index in header.unnamed:
                if record[index].strip():
                    raise ImportFileError(
                        f"{path}:{line}: {_column_label(index)} has no name in the header row "
                        f"but holds {record[index].strip()[:40]!r}: name the column or delete it"
                    )
            cells = dict(zip(columns, (from_spreadsheet_cell(c) for c in record), strict=True))
            try:
                batch.append(reader.check(line, cells))
            except _RowRejected as exc:
                report.rejected.append(
                    RowProblem(line, cells["email"].strip(), exc.field, exc.reason)
                )
            if len(batch) >= batch_size:
                writer.write(batch)
                batch = []
                if progress:
                    progress(line, total_lines)
        if batch:
            writer.write(batch)
        if progress:
            progress(max(last_line, total_lines), total_lines)
    except BaseException:
        session.rollback()
        raise
    if dry_run:
        session.rollback()
    else:
        session.commit()
    report.rejected.sort(key=lambda p: p.line)
    return report


def add_contact(
    session: Session,
    fields: Mapping[str, str],
    *,
    zone: ZoneInfo,
    actor: str,
    source: str | None = None,
) -> Contact:
    """Add one contact exactly as importing a file of one row would (the same checks:
    address, name, organisation, role, lawful basis and consent date, the firewall on
    publications, the suppression list). ``fields`` holds the import's columns by name;
    an address already on file is refused rather than updated. Audited by ``actor``; the
    caller commits.

    :raises ContactFieldError: a field is not valid (``field`` names it), the address is
        already a contact's, or it is suppressed.
    """
    cells = {column: fields.get(column, "") for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    try:
        row = _Reader(Directory.load(session), zone).check(1, cells)
    except _RowRejected as exc:
        raise ContactFieldError(f"{exc.field}: {exc.reason}", exc.field) from None
    existing = session.exec(select(Contact).where(col(Contact.email) == row.email)).first()
    if existing is not None:
        raise ContactFieldError(f"email: {row.email} is already contact {existing.id}", "email")
    report = ImportReport(path=Path("(form)"), encoding="utf-8", dry_run=False)
    _Writer(session, report, False, (source or f"added by {actor}")[:_SOURCE_MAX]).write([row])
    if report.rejected:
        raise ContactFieldError(f"email: {report.rejected[0].reason}", "email")
    contact = session.exec(select(Contact).where(col(Contact.email) == row.email)).one()
    organisation = session.get(Organisation, row.organisation_id)
    audit.record(
        session,
        actor,
        "contact:add",
        f"contact {contact.id}",
        f"{organisation.name if organisation else '?'}; "
        f"{', '.join(sorted(row.publications)) or 'no publications'}",
    )
    return contact


PROBLEM_COLUMNS = ("line", "outcome", "email", "field", "reason")


def write_problems(report: ImportReport, out: TextIO) -> int:
    """Write every rejected and skipped row of ``report`` as CSV, in line order, each cell
    safe for a spreadsheet. Returns the number of rows written."""
    problems = [("rejected", p) for p in report.rejected] + [("skipped", p) for p in report.skipped]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PROBLEM_COLUMNS)
    for outcome, problem in sorted(problems, key=lambda item: item[1].line):
        cells = [str(problem.line), outcome, problem.email, problem.field, problem.reason]
        writer.writerow([to_spreadsheet_cell(cell) for cell in cells])
    return len(problems)
