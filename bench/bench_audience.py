"""Benchmark: resolve a 100,000-contact audience, streamed.

Targets (issue 20): under 1 s on SQLite and 1.5 s on PostgreSQL, and streamed: memory
must not grow with the audience.
Each step runs in its own process so its peak memory is its own:
  baseline   plain sqlite3: SELECT the same columns and iterate (the floor);
  mailer     audiences.resolve() over the newsletter audience, counting recipients;
  naive      every Contact loaded as an ORM object into a list (what streaming avoids).
Python heap peak (tracemalloc) during resolve() is printed too.

    python bench/bench_audience.py [--count 100000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import (
    ROOT,
    ZONE,
    Measure,
    Verdict,
    create_pg_database,
    drop_pg_database,
    measure,
    postgres_url,
    print_table,
    python,
)

from mailer import db, organisations
from mailer.db import session_scope
from mailer.demo import contacts, read_organisations, write_csv
from mailer.importer import import_contacts

RESOLVE = """
import sys, time, tracemalloc
from mailer import db, publications
from mailer.audiences import resolve
from mailer.models import Publication
from sqlmodel import Session
from pathlib import Path
engine = db.create_engine(sys.argv[1])
rule = publications.load(Path("lists"), Publication.NEWSLETTER).audience
with Session(engine) as session:  # timed on its own: tracemalloc slows every allocation
    started = time.perf_counter()
    n = sum(1 for _ in resolve(session, Publication.NEWSLETTER, rule))
    seconds = time.perf_counter() - started
with Session(engine) as session:  # then again, for the Python heap's peak
    tracemalloc.start()
    sum(1 for _ in resolve(session, Publication.NEWSLETTER, rule))
    peak = tracemalloc.get_traced_memory()[1]
print(f"recipients={n} resolve_seconds={seconds:.3f} heap_peak_mb={peak / 1e6:.1f}")
"""

NAIVE = """
import sys, time
from mailer import db
from mailer.models import Contact
from sqlmodel import Session, select
engine = db.create_engine(sys.argv[1])
with Session(engine) as session:
    started = time.perf_counter()
    everyone = session.exec(select(Contact)).all()
    print(f"loaded={len(everyone)} seconds={time.perf_counter() - started:.3f}")
"""

BASELINE = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1])
started = time.perf_counter()
n = sum(1 for _ in con.execute(
    "SELECT id, email, name, organisation_id, role FROM contacts WHERE status = 'active'"))
print(f"rows={n} seconds={time.perf_counter() - started:.3f}")
"""


def _figure(output: str, key: str) -> float:
    for part in output.split():
        if part.startswith(key + "="):
            return float(part.split("=", 1)[1])
    raise ValueError(f"{key} not in {output!r}")


def fill(url: str, csv_path: Path) -> int:
    engine = db.create_engine(url)
    db.init_schema(engine)
    with session_scope(engine) as session:
        organisations.load_lists(session, ROOT / "lists")
    with session_scope(engine) as session:
        report = import_contacts(session, csv_path, zone=ZONE, batch_size=2000)
    engine.dispose()
    return report.added


def run(label: str, url: str) -> tuple[Measure, float, float]:
    result = measure(f"mailer resolve() ({label})", [*python(RESOLVE), db.normalise_url(url)])
    return result, _figure(result.output, "resolve_seconds"), _figure(result.output, "heap_peak_mb")


def main(argv: list[str] | None = None) -> list[Verdict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    verdicts: list[Verdict] = []
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mailer-bench-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "contacts.csv"
        write_csv(csv_path, contacts(read_organisations(ROOT / "lists"), args.count))
        sqlite_file = folder / "mailer.db"
        sqlite_url = f"sqlite:///{sqlite_file}"
        added = fill(sqlite_url, csv_path)
        print(f"Audience benchmark: {added:,} contacts, newsletter audience (every contact)")

        baseline = measure(
            "baseline: sqlite3 SELECT and iterate", [*python(BASELINE), str(sqlite_file)]
        )
        base_seconds = _figure(baseline.output, "seconds")
        resolved, seconds, heap = run("SQLite", sqlite_url)
        naive = measure("naive: all Contact ORM objects in a list", [*python(NAIVE), sqlite_url])
        recipients = int(_figure(resolved.output, "recipients"))
        rows.append(
            f"{baseline.label:<44} {base_seconds:8.3f} s {baseline.peak_mb:8.1f} MB peak RSS"
        )
        rows.append(
            f"{resolved.label:<44} {seconds:8.3f} s {resolved.peak_mb:8.1f} MB peak RSS "
            f"(heap peak {heap:.1f} MB)  x{seconds / base_seconds:4.1f} baseline time"
        )
        rows.append(
            f"{naive.label:<44} {_figure(naive.output, 'seconds'):8.3f} s "
            f"{naive.peak_mb:8.1f} MB peak RSS"
        )
        verdicts.append(
            Verdict(
                f"audience resolve {args.count // 1000}k (SQLite)",
                f"{seconds:.2f} s",
                "< 1 s",
                seconds < 1,
                f"sqlite3 SELECT {base_seconds:.2f} s (x{seconds / base_seconds:.1f})",
            )
        )

        base = None if args.no_postgres else postgres_url()
        if base:
            name = "mailer_bench_audience"
            try:
                pg_url = create_pg_database(base, name)
                fill(pg_url, csv_path)
                pg, pg_seconds, pg_heap = run("PostgreSQL", pg_url)
                rows.append(
                    f"{pg.label:<44} {pg_seconds:8.3f} s {pg.peak_mb:8.1f} MB peak RSS "
                    f"(heap peak {pg_heap:.1f} MB)"
                )
                verdicts.append(
                    Verdict(
                        f"audience resolve {args.count // 1000}k (PostgreSQL)",
                        f"{pg_seconds:.2f} s",
                        "< 1.5 s",
                        pg_seconds < 1.5,
                        f"SQLite's sqlite3 SELECT {base_seconds:.2f} s",
                    )
                )
            finally:
                drop_pg_database(base, name)
        else:
            print("PostgreSQL: not measured (none answers at 127.0.0.1:5432)")

    print()
    print("\n".join(rows))
    print()
    print(f"recipients resolved: {recipients:,}")
    print(
        f"streamed: resolve() heap peak {heap:.1f} MB; RSS {resolved.peak_mb:.0f} MB vs "
        f"{naive.peak_mb:.0f} MB when every contact is loaded as an ORM object"
    )
    print_table(verdicts, "Audience")
    return verdicts


if __name__ == "__main__":
    main()
