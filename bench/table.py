"""Issue 20's table: every benchmark's rows, each figure with its target, PASS/FAIL and
the baseline it was measured against in the same run (`make bench`).

    python bench/table.py [--no-postgres] [--quick]
"""

from __future__ import annotations

import argparse

import bench_audience
import bench_import
import render
import send
from harness import print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller runs, to try the bench")
    args = parser.parse_args()
    pg = ["--no-postgres"] if args.no_postgres else []
    count = ["--count", "5000"] if args.quick else []
    sending = ["--recipients", "2000", "--runs", "1", "--no-large"] if args.quick else []
    verdicts = [
        *bench_import.main([*count, *pg]),
        *bench_audience.main([*count, *pg]),
        *send.main([*sending, *pg]),
    ]
    render.main([])
    print_table(verdicts)


if __name__ == "__main__":
    main()
