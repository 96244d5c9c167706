"""Shared benchmark helpers: run a step in its own process and read its time and peak memory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa

from mailer.settings import CalendarSettings

ROOT = Path(__file__).resolve().parent.parent
ZONE = CalendarSettings().zone  # the default [calendar] timezone
PEAK = Path(__file__).resolve().parent / "peak.py"


@dataclass(frozen=True)
class Measure:
    label: str
    seconds: float
    peak_mb: float
    output: str

    def line(self) -> str:
        return f"{self.label:<44} {self.seconds:8.2f} s {self.peak_mb:8.1f} MB peak RSS"


def measure(
    label: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 300
) -> Measure:
    """Run a step (argv for ``bench/peak.py``) in its own process: wall time and peak memory."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(PEAK), *argv],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    match = re.search(r"peak_rss_mb=([0-9.]+)", done.stderr)
    if match is None:
        raise RuntimeError(f"{label}: no peak memory reported:\n{done.stderr}")
    return Measure(label, seconds, float(match.group(1)), done.stdout)


def free_port() -> int:
    """A port nothing listens on, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python(code: str) -> list[str]:
    """Arguments for :func:`measure` that run ``code`` (its own arguments follow)."""
    return ["-c", code]


def mailer(*args: str) -> list[str]:
    """Arguments for :func:`measure` that run the ``mailer`` command line."""
    return ["-m", "mailer", *args]


def postgres_url() -> str | None:
    """A base URL for the local PostgreSQL, if one answers."""
    for user in ("root", "postgres"):
        try:
            with psycopg.connect(host="127.0.0.1", user=user, dbname="test", connect_timeout=3):
                return f"postgresql+psycopg://{user}@127.0.0.1:5432"
        except psycopg.Error:
            continue
    return None


def create_pg_database(base: str, name: str) -> str:
    admin = sa.create_engine(f"{base}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{base}/{name}"


def drop_pg_database(base: str, name: str) -> None:
    admin = sa.create_engine(f"{base}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@dataclass(frozen=True)
class Verdict:
    """One row of the performance table: a figure against its target, and the baseline
    it was measured against in the same run."""

    benchmark: str
    figure: str
    target: str
    passed: bool
    baseline: str

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{self.benchmark:<50} {self.figure:>18}  {self.target:<10} {verdict:<4}  "
            f"{self.baseline}"
        )


def print_table(verdicts: Sequence[Verdict], title: str = "Performance (issue 20)") -> None:
    """The table's rows, each with its target, PASS/FAIL and its baseline of this run."""
    print()
    print(title)
    print(f"{'benchmark':<50} {'now':>18}  {'target':<10} {'':<4}  baseline (same run)")
    for verdict in verdicts:
        print(verdict.line())
