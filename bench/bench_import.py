"""Benchmark: import 100,000 generated contacts from CSV with `mailer contacts import`.

Targets (issue 20): 100,000 new contacts in under 10 s on SQLite and 15 s on PostgreSQL,
under 120 MB peak memory; importing the same file again in under 8 s.
Baseline, measured in the same run: the same CSV parsed with the csv module and inserted
with plain sqlite3 executemany in one transaction (no validation, no ORM): the floor.
Also measured: parsing plus email-validator alone, the share no database work can remove.

    python bench/bench_import.py [--count 100000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import (
    ROOT,
    Measure,
    Verdict,
    create_pg_database,
    drop_pg_database,
    mailer,
    measure,
    postgres_url,
    print_table,
    python,
)

from mailer import db, organisations
from mailer.db import session_scope
from mailer.demo import contacts, read_organisations, write_csv

VALIDATE_ONLY = """
import csv, sys
from email_validator import validate_email
with open(sys.argv[1], encoding="utf-8", newline="") as f:
    rows = csv.reader(f)
    next(rows)
    n = sum(1 for r in rows if validate_email(r[0], check_deliverability=False))
print(n)
"""

BASELINE = """
import csv, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE c (email TEXT UNIQUE, name TEXT, organisation TEXT, role TEXT)")
with open(sys.argv[2], encoding="utf-8", newline="") as f, con:
    rows = csv.reader(f)
    next(rows)
    con.executemany("INSERT INTO c VALUES (?, ?, ?, ?)", (r[:4] for r in rows))
print(con.execute("SELECT count(*) FROM c").fetchone()[0])
"""


def prepare(url: str) -> None:
    engine = db.create_engine(url)
    db.init_schema(engine)
    with session_scope(engine) as session:
        organisations.load_lists(session, ROOT / "lists")
    engine.dispose()


def run_import(label: str, url: str, csv_path: Path, config: Path) -> Measure:
    return measure(
        label,
        mailer("contacts", "import", str(csv_path)),
        env={"MAILER_CONFIG": str(config), "MAILER_DATABASE_URL": url, "COLUMNS": "120"},
    )


def main(argv: list[str] | None = None) -> list[Verdict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    pg: Measure | None = None
    with tempfile.TemporaryDirectory(prefix="mailer-bench-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "contacts.csv"
        written = write_csv(csv_path, contacts(read_organisations(ROOT / "lists"), args.count))
        size_mb = csv_path.stat().st_size / 1e6
        print(f"Import benchmark: {written:,} contacts, {size_mb:.1f} MB CSV")
        config = ROOT / "config.toml"

        baseline = measure(
            "baseline: csv + sqlite3 executemany",
            [*python(BASELINE), str(folder / "b.db"), str(csv_path)],
        )
        validating = measure(
            "csv + email-validator alone (no database)", [*python(VALIDATE_ONLY), str(csv_path)]
        )
        sqlite_url = f"sqlite:///{folder / 'mailer.db'}"
        prepare(sqlite_url)
        first = run_import("mailer contacts import (SQLite, new)", sqlite_url, csv_path, config)
        again = run_import(
            "mailer contacts import (SQLite, re-import)", sqlite_url, csv_path, config
        )
        results = [baseline, validating, first, again]
        assert f"{written:,} added" in first.output, first.output
        assert f"{written:,} unchanged" in again.output, again.output

        base = None if args.no_postgres else postgres_url()
        if base:
            name = "mailer_bench_import"
            try:
                pg_url = create_pg_database(base, name)
                prepare(pg_url)
                pg = run_import(
                    "mailer contacts import (PostgreSQL, new)", pg_url, csv_path, config
                )
                assert f"{written:,} added" in pg.output, pg.output
                results.append(pg)
            finally:
                drop_pg_database(base, name)
        else:
            print("PostgreSQL: not measured (none answers at 127.0.0.1:5432)")

    print()
    for result in results:
        ratio = result.seconds / baseline.seconds
        print(f"{result.line()}   x{ratio:5.1f} baseline time")
    floor = f"csv+sqlite3 executemany {baseline.seconds:.1f} s"
    k = args.count // 1000
    verdicts = [
        Verdict(
            f"import {k}k new contacts (SQLite)",
            f"{first.seconds:.1f} s",
            "< 10 s",
            first.seconds < 10,
            f"{floor} (x{first.seconds / baseline.seconds:.1f})",
        ),
        Verdict(
            f"import {k}k new contacts: peak memory",
            f"{first.peak_mb:.0f} MB",
            "< 120 MB",
            first.peak_mb < 120,
            f"csv+email-validator alone {validating.peak_mb:.0f} MB",
        ),
        Verdict(
            f"re-import of the same {k}k (SQLite)",
            f"{again.seconds:.1f} s",
            "< 8 s",
            again.seconds < 8,
            f"{floor} (x{again.seconds / baseline.seconds:.1f})",
        ),
    ]
    if pg is not None:
        verdicts.insert(
            1,
            Verdict(
                f"import {k}k new contacts (PostgreSQL)",
                f"{pg.seconds:.1f} s",
                "< 15 s",
                pg.seconds < 15,
                floor,
            ),
        )
    rate = written / first.seconds
    print(f"rate: {rate:,.0f} contacts/s (baseline {written / baseline.seconds:,.0f}/s)")
    print_table(verdicts, "Import")
    return verdicts


if __name__ == "__main__":
    main()
