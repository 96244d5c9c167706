"""Organisations: the 38 LEPs and external stakeholders, loaded from ``lists/`` and looked up.

Errors::

    OrganisationError          a list file row or a new organisation is invalid
     +-- AmbiguousOrganisation a name or short name that answers for two organisations
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer.models import Contact, LawfulBasis, Organisation, OrganisationKind

LEPS_FILE = "leps.csv"
EXTERNAL_FILE = "organisations.csv"
PUBLIC_ORGANISATION = "Newsletter subscribers (public sign-up)"
_DOMAIN = re.compile(
    r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)


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


_LIMITS = {"name": 200, "short_name": 60, "board_group": 100, "website": 300, "domains": 500}


def parse_domains(raw: str, where: str) -> str | None:
    """A cell of mail domains ("d2n2lep.org; d2n2.org.uk") in its stored form: lower case,
    international names in their xn-- form, sorted, joined by ";". None when blank.

    :raises OrganisationError: a value is not a domain name (the message names ``where``).
    """
    found = set()
    for word in re.split(r"[\s;,]+", raw.strip()):
        if not word:
            continue
        text = word.lower().removeprefix("@").rstrip(".")
        try:
            domain = text.encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
        if not _DOMAIN.match(domain):
            raise OrganisationError(f"{where}domains: {word!r} is not a mail domain")
        found.add(domain)
    return ";".join(sorted(found)) or None


@dataclass(frozen=True)
class ListRow:
    """One organisation as a list file gives it, with where it came from (``file:line``)."""

    where: str
    fields: dict[str, str | None]


def _check_lengths(values: dict[str, str | None], prefix: str) -> None:
    for field, limit in _LIMITS.items():
        value = values.get(field)
        if value is not None and len(value) > limit:
            raise OrganisationError(f"{prefix}{field}: longer than {limit} characters")


def _fields(
    row: dict[str, str], *, path: Path, line: int, kind: OrganisationKind | None
) -> dict[str, str | None]:
    name = " ".join((row.get("name") or "").split())
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
    fields: dict[str, str | None] = {
        "name": name,
        "short_name": " ".join((row.get("short_name") or "").split()) or None,
        "kind": parsed_kind.value,
        "board_group": (row.get("board_group") or "").strip() or None,
        "website": (row.get("website") or "").strip() or None,
        "domains": parse_domains(row.get("domains") or "", f"{path}:{line}: "),
    }
    if fields["domains"] and parsed_kind is not OrganisationKind.LEP:
        raise OrganisationError(
            f"{path}:{line}: domains: only a LEP's mail domains make a sign-up its contact"
        )
    _check_lengths(fields, f"{path}:{line}: ")
    return fields


def _read(path: Path, kind: OrganisationKind | None) -> list[ListRow]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                where = f"{path}:{reader.line_num}"
                fields = _fields(row, path=path, line=reader.line_num, kind=kind)
                rows.append(ListRow(where, fields))
            return rows
    except FileNotFoundError as exc:
        raise OrganisationError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OrganisationError(f"{path}: cannot read: {exc}") from exc


def _keys(name: str, short_name: str | None) -> set[str]:
    """The lookup keys an organisation answers to: its name and its short name."""
    return {_key(name), *([_key(short_name)] if short_name else [])}


def _describe(organisation: Organisation) -> str:
    short = f" ({organisation.short_name})" if organisation.short_name else ""
    return f"{organisation.name!r}{short}"


def _check_rows(rows: Sequence[ListRow]) -> None:
    """No two rows of the list files may share a name or short name, in either role, or
    a mail domain."""
    domains: dict[str, ListRow] = {}
    for row in rows:
        for domain in (row.fields.get("domains") or "").split(";"):
            earlier = domains.get(domain)
            if domain and earlier is not None:
                raise OrganisationError(
                    f"{row.where}: the domain {domain!r} is already {earlier.fields['name']}'s "
                    f"at {earlier.where}: a mail domain belongs to one LEP"
                )
            domains[domain] = row
    claimed: dict[str, ListRow] = {}
    for row in rows:
        name, short = row.fields["name"], row.fields["short_name"]
        assert name is not None
        for key in _keys(name, short):
            earlier = claimed.get(key)
            if earlier is not None:
                raise OrganisationError(
                    f"{row.where}: {key!r} already names {earlier.fields['name']!r} "
                    f"at {earlier.where}; names and short names must be unique across "
                    f"{LEPS_FILE} and {EXTERNAL_FILE}"
                )
            claimed[key] = row


def upsert(session: Session, rows: Sequence[ListRow]) -> LoadResult:
    """Add organisations that are new (by name) and update those that changed.

    :raises OrganisationError: two rows, or a row and an organisation already stored, share
        a name or short name; or a row would turn a LEP into another kind or the reverse.
    """
    _check_rows(rows)
    stored = list(session.exec(select(Organisation)))
    by_name = {_key(o.name): o for o in stored}
    targets = [by_name.get(_key(str(row.fields["name"]))) for row in rows]
    from_files = {id(o) for o in targets if o is not None}
    # Keys held by stored organisations that no row rewrites.
    kept: dict[str, Organisation] = {}
    for organisation in stored:
        if id(organisation) not in from_files:
            for key in _keys(organisation.name, organisation.short_name):
                kept[key] = organisation
    for row, found in zip(rows, targets, strict=True):
        name, short = str(row.fields["name"]), row.fields["short_name"]
        for key in _keys(name, short):
            other = kept.get(key)
            if other is not None:
                raise OrganisationError(
                    f"{row.where}: {key!r} already names {_describe(other)} in the database "
                    "(added with `mailer orgs add`?); rename one of them"
                )
        kind = OrganisationKind(str(row.fields["kind"]))
        if found is not None and (found.kind is OrganisationKind.LEP) != (
            kind is OrganisationKind.LEP
        ):
            raise OrganisationError(
                f"{row.where}: {found.name!r} is stored as {found.kind.value}; a list reload "
                f"cannot make it {kind.value} (the bulletin goes to LEPs only): fix the row, "
                "or give the organisation a new name"
            )
    added = updated = unchanged = 0
    for row, found in zip(rows, targets, strict=True):
        if found is None:
            session.add(Organisation.model_validate(row.fields))
            added += 1
            continue
        changed = False
        for field, value in row.fields.items():
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

    :raises OrganisationError: a file is missing, a row is invalid, a name or short name is
        used twice, or a LEP would change kind; nothing is written.
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

    :raises OrganisationError: the name or short name is already a name or short name of
        another organisation, or a field is empty or too long.
    """
    name = " ".join(name.split())
    if not name:
        raise OrganisationError("name: must not be empty")
    short_name = " ".join((short_name or "").split()) or None
    values = {
        "name": name,
        "short_name": short_name,
        "website": (website or "").strip() or None,
        "board_group": (board_group or "").strip() or None,
    }
    _check_lengths(values, "")
    wanted = {_key(name): ("name", name)}
    if short_name:
        wanted.setdefault(_key(short_name), ("short name", short_name))
    for existing in session.exec(select(Organisation)):
        for key in _keys(existing.name, existing.short_name):
            if key in wanted:
                label, text = wanted[key]
                raise OrganisationError(
                    f"{label}: {text!r} already exists as the name or short name of "
                    f"{_describe(existing)}"
                )
    organisation = Organisation(
        name=name,
        kind=kind,
        short_name=short_name,
        website=values["website"],
        board_group=values["board_group"],
    )
    session.add(organisation)
    session.flush()
    return organisation


def default_basis(kind: OrganisationKind) -> LawfulBasis | None:
    """The lawful basis a contact gets when none is stated: a LEP's contacts are staff of a
    corporate body (legitimate interest); anyone else's basis must be given."""
    return LawfulBasis.LEGITIMATE_INTEREST if kind is OrganisationKind.LEP else None


def lep_for_address(session: Session, email: str) -> Organisation | None:
    """The LEP whose own mail domain ``email`` is at (the domain or a subdomain of it)."""
    domain = email.rsplit("@", 1)[-1].lower()
    leps = session.exec(
        select(Organisation).where(
            col(Organisation.kind) == OrganisationKind.LEP, col(Organisation.domains).is_not(None)
        )
    )
    for lep in leps:
        for own in (lep.domains or "").split(";"):
            if own and (domain == own or domain.endswith(f".{own}")):
                return lep
    return None


def public_group(session: Session) -> Organisation:
    """The group every public sign-up joins (kind other), made on first use."""
    group = session.exec(
        select(Organisation).where(col(Organisation.name) == PUBLIC_ORGANISATION)
    ).first()
    if group is None:
        group = Organisation(name=PUBLIC_ORGANISATION, kind=OrganisationKind.OTHER)
        session.add(group)
        session.flush()
    if group.kind is OrganisationKind.LEP:
        raise OrganisationError(
            f"{PUBLIC_ORGANISATION!r} is listed as a LEP: public sign-ups never join a LEP; "
            "rename that row of lists/leps.csv"
        )
    return group


class AmbiguousOrganisation(OrganisationError):
    """A name or short name that answers for more than one organisation."""


class Directory:
    """Organisations by name or short name, case-insensitively, for fast lookups.

    A key that names two organisations (one's name is another's short name) is never
    resolved to either: :meth:`find` raises :class:`AmbiguousOrganisation`.
    """

    def __init__(self, organisations: Sequence[Organisation]) -> None:
        self._by_key: dict[str, list[Organisation]] = {}
        for organisation in organisations:
            for key in _keys(organisation.name, organisation.short_name):
                self._by_key.setdefault(key, []).append(organisation)

    @classmethod
    def load(cls, session: Session) -> Directory:
        return cls(list(session.exec(select(Organisation))))

    def find(self, text: str) -> Organisation | None:
        """The organisation named ``text`` (name or short name), or None.

        :raises AmbiguousOrganisation: ``text`` names more than one organisation.
        """
        found = self._by_key.get(_key(text))
        if not found:
            return None
        if len(found) > 1:
            names = " and ".join(_describe(o) for o in found)
            raise AmbiguousOrganisation(
                f"{text.strip()!r} names {len(found)} organisations: {names}; "
                "use the full name (and rename one of them)"
            )
        return found[0]

    def named(self, text: str) -> Organisation:
        """The organisation ``text`` names, for a person who typed it.

        :raises OrganisationError: it names none (the message suggests the closest
            name) or more than one.
        """
        found = self.find(text)
        if found is None or found.id is None:
            hint = self.suggest(text)
            did_you_mean = f"; did you mean {hint!r}?" if hint else " (see `mailer orgs list`)"
            raise OrganisationError(f"unknown organisation {text.strip()!r}{did_you_mean}")
        return found

    def suggest(self, text: str) -> str | None:
        """The closest known name, for a helpful error message."""
        keys = [key for key, found in self._by_key.items() if len(found) == 1]
        matches = difflib.get_close_matches(_key(text), keys, n=1, cutoff=0.75)
        if not matches:
            return None
        return self._by_key[matches[0]][0].name


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
