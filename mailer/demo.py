"""Demo data: fictitious contacts (``lists/demo_contacts.csv``, benchmarks), issues and events.

Every address is under the reserved ``.example`` top-level domain (RFC 2606),
so no demo message can ever reach a real person.

    python -m mailer.demo lists/demo_contacts.csv           # the shipped demo file
    python -m mailer.demo /tmp/big.csv --count 100000       # a benchmark file
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from mailer import calendar, editorial, events, issuefile, staff
from mailer.models import Issue, Publication
from mailer.organisations import EXTERNAL_FILE, LEPS_FILE
from mailer.settings import Settings

FIRST_NAMES = [
    "Alex",
    "Amira",
    "Ben",
    "Bethan",
    "Chloe",
    "Dev",
    "Eleanor",
    "Farah",
    "Finn",
    "Grace",
    "Hamid",
    "Isla",
    "Jack",
    "Jaya",
    "Kofi",
    "Laura",
    "Liam",
    "Maya",
    "Mohammed",
    "Niamh",
    "Noah",
    "Olu",
    "Priya",
    "Rhys",
    "Rosa",
    "Sam",
    "Sian",
    "Tariq",
    "Una",
    "Wei",
    "Zara",
]
LAST_NAMES = [
    "Adeyemi",
    "Ahmed",
    "Bennett",
    "Campbell",
    "Chen",
    "Davies",
    "Evans",
    "Fraser",
    "Green",
    "Hughes",
    "Iqbal",
    "Jones",
    "Kaur",
    "Khan",
    "Lewis",
    "Morgan",
    "Murphy",
    "Nowak",
    "Okafor",
    "Patel",
    "Price",
    "Roberts",
    "Shah",
    "Smith",
    "Taylor",
    "Thomas",
    "Walker",
    "Williams",
    "Wright",
    "Young",
]
LEP_ROLES = ("chair", "chief executive/director", "officer", "communications lead", "board member")
DEMO_SOURCE = "demo data (fictitious)"


@dataclass(frozen=True)
class DemoOrganisation:
    name: str
    short_name: str
    kind: str


def read_organisations(lists_dir: Path) -> list[DemoOrganisation]:
    """The organisations in ``lists/``: LEPs first, then external ones."""
    found = []
    for filename, kind in ((LEPS_FILE, "lep"), (EXTERNAL_FILE, None)):
        with (lists_dir / filename).open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                found.append(
                    DemoOrganisation(
                        row["name"], row["short_name"] or row["name"], kind or row["kind"]
                    )
                )
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


def contacts(
    organisations: Sequence[DemoOrganisation], count: int, *, seed: int = 2017
) -> Iterator[dict[str, str]]:
    """``count`` fictitious contacts spread over ``organisations``, the same for a given seed.

    LEP contacts rely on legitimate interest (staff of a corporate body); external contacts
    gave consent on a demo date. A few choose the newsletter only.
    """
    rng = random.Random(seed)
    for index in range(count):
        organisation = organisations[index % len(organisations)]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        number = index // len(organisations) + 1
        local = f"{first}.{last}".casefold() + (f".{number}" if number > 1 else "")
        email = f"{local}@{_slug(organisation.short_name)}.demo.example"
        if organisation.kind == "lep":
            role = LEP_ROLES[(index // len(organisations)) % len(LEP_ROLES)]
            yield {
                "email": email,
                "name": f"{first} {last}",
                "organisation": organisation.short_name,
                "role": role,
                "lawful_basis": "legitimate_interest",
                "consented_at": "",
                "source": DEMO_SOURCE,
                "publications": "newsletter" if rng.random() < 0.1 else "bulletin;newsletter",
            }
        else:
            yield {
                "email": email,
                "name": f"{first} {last}",
                "organisation": organisation.short_name,
                "role": "stakeholder",
                "lawful_basis": "consent",
                "consented_at": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "source": DEMO_SOURCE,
                "publications": "newsletter",
            }


DEMO_FOLDER = "demo"
DEMO_EDITOR = staff.operator("demo loader")  # who wrote the demo issues


@dataclass(frozen=True)
class DemoContent:
    events_added: int
    issues_created: tuple[str, ...]


def load_content(session: Session, lists_dir: Path, settings: Settings) -> DemoContent:
    """The demo events diary and issues from ``lists/demo/``; what exists already is kept.

    Each demo issue takes the open slot its file names (the newsletters of that year are
    planned first, as staff would with `mailer calendar plan`), or the next open slot of
    its publication once that time has passed.

    :raises EventError, IssueFileError: a demo file is malformed.
    """
    zone = settings.calendar.zone
    folder = lists_dir / DEMO_FOLDER
    diary = folder / "events.csv"
    added = events.import_csv(session, diary).added if diary.exists() else 0
    created = []
    for path in sorted(folder.glob("*.md")):
        document = issuefile.read(path, zone)
        known = session.exec(
            select(Issue).where(
                col(Issue.publication) == document.publication,
                col(Issue.subject) == document.subject,
            )
        ).first()
        if known is not None:
            continue
        if document.slot_at is not None and document.publication is Publication.NEWSLETTER:
            calendar.plan_newsletters(session, document.slot_at.astimezone(zone).year, settings)
        try:
            with session.begin_nested():
                issue = editorial.save(session, document, editor=DEMO_EDITOR, settings=settings)
        except editorial.SlotError:  # its time has passed: the next open slot instead
            later = editorial.new_draft(
                session, document.publication, slot_at=None, settings=settings
            )
            moved = dataclasses.replace(document, number=later.number, slot_at=later.slot_at)
            issue = editorial.save(session, moved, editor=DEMO_EDITOR, settings=settings)
        created.append(f"{issue.publication} {issue.number}")
    return DemoContent(events_added=added, issues_created=tuple(created))


def write_csv(path: Path, rows: Iterator[dict[str, str]]) -> int:
    """Write contact rows to ``path`` in the import format; returns how many."""
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer: csv.DictWriter[str] | None = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            written += 1
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write fictitious contacts as an import CSV.")
    parser.add_argument("out", type=Path, help="the CSV file to write")
    parser.add_argument(
        "--count", type=int, default=275, help="how many contacts (275: five per organisation)"
    )
    parser.add_argument("--lists", type=Path, default=Path("lists"), help="the lists folder")
    parser.add_argument("--seed", type=int, default=2017, help="random seed (2017)")
    args = parser.parse_args(argv)
    organisations = read_organisations(args.lists)
    written = write_csv(args.out, contacts(organisations, args.count, seed=args.seed))
    print(f"wrote {written} fictitious contacts to {args.out}")


if __name__ == "__main__":
    main()
