"""Real `mailer daemon` processes: killed before a slot and restarted, and two at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO

import pytest
from sqlmodel import Session, col, select

from mailer import calendar, clock, db, issues, settings
from mailer.models import IssueStatus, Slot
from tests.smtp_server import RecordingHandler, running
from tests.test_cli import run
from tests.test_sending_processes import _use_smtp

MAILER = [sys.executable, "-m", "mailer"]
STAFF = ["comms@lepnetwork.example"]


def _readers(handler: RecordingHandler) -> Counter[str]:
    return Counter(r for m in list(handler.messages) if m.recipients != STAFF for r in m.recipients)


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _demo_bulletin_in(project: Path, db_url: str, seconds: float) -> float:
    """The demo bulletin approved for a slot ``seconds`` from now; returns that moment."""
    assert run("init", "--demo").exit_code == 0
    config = settings.load(project / "config.toml")
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            calendar.year_view(session, 2027, config.settings)
            slot = session.exec(
                select(Slot).where(
                    col(Slot.publication) == "bulletin", col(Slot.number) == "2027/01"
                )
            ).one()
            assert slot.id is not None
            at = clock.now() + timedelta(seconds=seconds)
            calendar.move_slot(session, slot.id, at, config.settings)
            session.commit()
    finally:
        engine.dispose()
    approved = run("issue", "approve", "1")
    assert approved.exit_code == 0, approved.output
    return time.monotonic() + (at - clock.now()).total_seconds()


def _daemon(project: Path, log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MAILER, "daemon", "--tick", "1"],
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _status(db_url: str) -> IssueStatus:
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            return issues.get(session, 1).status
    finally:
        engine.dispose()


def test_a_daemon_killed_before_the_slot_sends_after_a_restart_exactly_once(
    project: Path, db_url: str, tmp_path: Path
) -> None:
    with running(RecordingHandler()) as (controller, handler):
        _use_smtp(project, controller.port)
        slot_at = _demo_bulletin_in(project, db_url, 12)
        with (tmp_path / "first.log").open("w") as log:
            first = _daemon(project, log)
            _wait(lambda: time.monotonic() > slot_at - 3, 30, "the moment before the slot")
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        assert _readers(handler) == Counter()
        _wait(lambda: time.monotonic() > slot_at + 3, 30, "the slot to pass")
        with (tmp_path / "second.log").open("w") as log:
            second = _daemon(project, log)
            try:
                _wait(lambda: _status(db_url) is IssueStatus.SENT, 90, "the issue to be sent")
                time.sleep(2)  # would a second copy follow?
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=30)
        received = _readers(handler)
    assert len(received) == 168
    assert set(received.values()) == {1}
    assert second.returncode == 0
    text = (tmp_path / "second.log").read_text(encoding="utf-8")
    assert "sending issue 1: queued 168 deliveries" in text


@pytest.mark.postgres
def test_two_daemons_on_postgresql_never_both_send_and_one_takes_over(
    project: Path, db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's daemons share the same lease; this runs on PostgreSQL to save time")
    with running(RecordingHandler()) as (controller, handler):
        _use_smtp(project, controller.port)
        slot_at = _demo_bulletin_in(project, db_url, 10)
        logs = [(tmp_path / f"daemon{n}.log").open("w") for n in range(2)]
        daemons = [_daemon(project, log) for log in logs]
        try:
            _wait(lambda: time.monotonic() > slot_at, 30, "the slot")
            _wait(lambda: _status(db_url) is IssueStatus.SENT, 90, "the issue to be sent")
            time.sleep(2)
            texts = [(tmp_path / f"daemon{n}.log").read_text(encoding="utf-8") for n in range(2)]
            leaders = [n for n, text in enumerate(texts) if "keeping the calendar" in text]
            assert len(leaders) == 1, texts
            follower = 1 - leaders[0]
            assert "waiting to take over" in texts[follower]
            # The leader dies: the other takes over.
            os.kill(daemons[leaders[0]].pid, signal.SIGKILL)
            _wait(
                lambda: (
                    "keeping the calendar"
                    in (tmp_path / f"daemon{follower}.log").read_text(encoding="utf-8")
                ),
                30,
                "the other daemon to take over",
            )
        finally:
            for process in daemons:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
            for log in logs:
                log.close()
        received = _readers(handler)
    assert len(received) == 168
    assert set(received.values()) == {1}
