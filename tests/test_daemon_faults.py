"""Real `mailer daemon` processes under faults: every connection cut, a leader frozen with
SIGSTOP, the relay down across a slot, the database missing at start. The daemon never
gives up, and each slot is sent exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from mailer import db, leadership
from mailer.models import IssueStatus
from tests.smtp_server import RecordingHandler, free_port, running
from tests.test_daemon_processes import MAILER, _demo_bulletin_in, _readers, _status, _wait
from tests.test_sending_processes import _use_smtp

LEASE = 6  # [calendar] leader_lease_seconds in these tests (the shipped value is 60)
READERS = 168  # the demo bulletin's audience
POSTGRES = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def _configure(project: Path, *, listen: str = "") -> None:
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("leader_lease_seconds = 60.0", f"leader_lease_seconds = {LEASE}")
    if listen:
        text = text.replace('listen = ""', f'listen = "{listen}"')
    config.write_text(text, encoding="utf-8")


def _daemon(project: Path, log: IO[str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MAILER, *extra, "daemon", "--tick", "1"],
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def _exactly_once(handler: RecordingHandler) -> None:
    received = _readers(handler)
    assert len(received) == READERS
    assert set(received.values()) == {1}, Counter(received.values())


_DAEMONS = "application_name = 'mailer-daemon' AND datname = current_database()"


def _daemon_connections(db_url: str, *, terminate: bool = False) -> int:
    """How many connections the daemons hold (they are named), each ended first with
    pg_terminate_backend when ``terminate``."""
    admin = sa.create_engine(db_url)
    what = "count(pg_terminate_backend(pid))" if terminate else "count(*)"
    try:
        with admin.connect() as connection:
            found = connection.execute(
                sa.text(f"SELECT {what} FROM pg_stat_activity WHERE {_DAEMONS}")
            ).scalar_one()
            connection.commit()
    finally:
        admin.dispose()
    return int(found)


def _terminate_mailer_connections(db_url: str) -> int:
    """pg_terminate_backend of every connection the daemons opened."""
    return _daemon_connections(db_url, terminate=True)


def _tick_at(db_url: str) -> object:
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            lead = leadership.current(session)
            return lead.last_tick_at if lead else None
    finally:
        engine.dispose()


def _leader(db_url: str) -> str:
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            lead = leadership.current(session)
            return lead.holder if lead else ""
    finally:
        engine.dispose()


@POSTGRES
def test_cutting_every_connection_before_a_slot_and_during_its_send_loses_nothing(
    project: Path, db_url: str, tmp_path: Path
) -> None:
    handler = RecordingHandler(delay=0.05)
    with running(handler) as (controller, _):
        _use_smtp(project, controller.port, lease=10)
        _configure(project)
        slot_at = _demo_bulletin_in(project, db_url, 14)
        logs = [tmp_path / f"daemon{n}.log" for n in range(2)]
        handles = [path.open("w") for path in logs]
        daemons = [_daemon(project, handle) for handle in handles]
        try:
            # Both daemons up (a loaded machine starts them slowly), then the slot's moment.
            _wait(lambda: _daemon_connections(db_url) >= 2, 60, "both daemons to connect")
            _wait(lambda: time.monotonic() > slot_at - 4, 30, "the moment before the slot")
            assert _terminate_mailer_connections(db_url) >= 2  # both daemons' connections
            _wait(lambda: bool(_readers(handler)), 60, "the send to start")
            assert _terminate_mailer_connections(db_url) >= 1
            _wait(lambda: _status(db_url) is IssueStatus.SENT, 120, "the issue to be sent")
            _wait(lambda: bool(_leader(db_url)), 60, "a daemon to lead")
            assert all(d.poll() is None for d in daemons), [_text(p) for p in logs]
        finally:
            _stop(daemons)
            for handle in handles:
                handle.close()
    _exactly_once(handler)


@POSTGRES
def test_a_frozen_leader_is_replaced_and_sends_nothing_when_it_wakes(
    project: Path, db_url: str, tmp_path: Path
) -> None:
    with running(RecordingHandler()) as (controller, handler):
        _use_smtp(project, controller.port, lease=10)
        _configure(project)
        slot_at = _demo_bulletin_in(project, db_url, 16)
        logs = [tmp_path / f"daemon{n}.log" for n in range(2)]
        handles = [path.open("w") for path in logs]
        first = _daemon(project, handles[0])
        _wait(lambda: "keeping the calendar" in _text(logs[0]), 30, "the first to lead")
        second = _daemon(project, handles[1])
        daemons = [first, second]
        try:
            _wait(lambda: "waiting to take over" in _text(logs[1]), 30, "the second to follow")
            _wait(lambda: time.monotonic() > slot_at - 8, 30, "the moment before the slot")
            os.kill(first.pid, signal.SIGSTOP)
            assert _readers(handler) == Counter()  # frozen before its slot
            assert _status(db_url) is IssueStatus.SCHEDULED
            _wait(lambda: _status(db_url) is IssueStatus.SENT, 90, "the issue to be sent")
            assert "keeping the calendar" in _text(logs[1])
            os.kill(first.pid, signal.SIGCONT)
            woke = _tick_at(db_url)
            _wait(lambda: "no longer leading" in _text(logs[0]), 30, "the first to stand down")
            # The new leader goes on ticking; the woken one competes again, and follows.
            _wait(lambda: _tick_at(db_url) != woke, 30, "the new leader's next tick")
            _wait(lambda: "waiting to take over" in _text(logs[0]), 30, "the first to follow")
            assert first.poll() is None and second.poll() is None
        finally:
            _stop(daemons)
            for handle in handles:
                handle.close()
    _exactly_once(handler)
    assert "sending issue" not in _text(logs[0])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (127.0.0.1 only)
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""  # not listening yet


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the relay's fault, not the DB's
def test_the_relay_down_across_a_slot_is_waited_out_and_the_slot_sent_once(
    project: Path, db_url: str, tmp_path: Path
) -> None:
    relay, probe = free_port(), free_port()
    _use_smtp(project, relay, lease=10)
    _configure(project, listen=f"127.0.0.1:{probe}")
    slot_at = _demo_bulletin_in(project, db_url, 8)
    log = tmp_path / "daemon.log"
    with log.open("w") as handle:
        daemon = _daemon(project, handle, "--log-format", "json")
        try:
            ready = f"http://127.0.0.1:{probe}/readyz"
            _wait(lambda: _get(ready)[0] == 200, 60, "the daemon to be ready")
            _wait(lambda: time.monotonic() > slot_at + 12, 40, "the relay to stay down a while")
            assert _status(db_url) is IssueStatus.SENDING  # queued at the slot, held back
            assert _get(ready)[0] == 200  # the daemon itself is fine: the relay is not
            metrics = _get(f"http://127.0.0.1:{probe}/metrics")[1]
            assert 'mailer_deliveries{status="queued"}' in metrics
            with running(RecordingHandler(), port=relay) as (_, handler):
                _wait(lambda: _status(db_url) is IssueStatus.SENT, 120, "the issue to be sent")
                received = _readers(handler)
        finally:
            _stop([daemon])
    assert len(received) == READERS and set(received.values()) == {1}
    printed = _text(log).splitlines()
    console = "Daemon starting (Ctrl-C to stop)"  # the console's line, not a log record
    assert printed.count(console) == 1
    lines = [json.loads(line) for line in printed if line != console]  # each: one object
    assert lines and all({"time", "level", "logger", "message"} <= set(r) for r in lines)
    assert any(r.get("slot") and r.get("decision") == "sent" for r in lines)
    assert any("queued 168 deliveries" in r["message"] for r in lines)


@POSTGRES
def test_a_daemon_started_before_its_database_exists_waits_for_it(
    project: Path,
    db_url: str,
    tmp_path: Path,
    postgres_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, _, _ = postgres_server.rpartition("/")
    name = f"mailer_late_{os.getpid()}"
    url = f"{base}/{name}"
    monkeypatch.setenv("MAILER_DATABASE_URL", url)
    log = tmp_path / "daemon.log"
    admin = sa.create_engine(f"{base}/test", isolation_level="AUTOCOMMIT")
    try:
        with log.open("w") as handle:
            daemon = _daemon(project, handle)
            try:
                _wait(lambda: "is failing" in _text(log) or daemon.poll() is not None, 60, "a try")
                assert daemon.poll() is None, _text(log)  # not an exit: it waits
                with admin.connect() as connection:
                    connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
                from tests.test_cli import run

                assert run("init").exit_code == 0
                _wait(lambda: "keeping the calendar" in _text(log), 90, "the daemon to lead")
            finally:
                _stop([daemon])
        assert daemon.returncode == 0
        assert "the database is back after" in _text(log)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
