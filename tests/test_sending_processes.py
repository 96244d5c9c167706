"""Real `mailer send` and `mailer worker` processes: killed with SIGKILL, and run side by side."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailer import db, issues, outbox
from mailer.models import Contact, Delivery, DeliveryStatus, IssueStatus
from tests.outbox_fixtures import approved, people, start
from tests.smtp_server import RecordingHandler, running
from tests.test_cli import run

MAILER = [sys.executable, "-m", "mailer"]


def _use_smtp(project: Path, port: int, connections: int = 4) -> None:
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('transport = "capture"', 'transport = "smtp"')
    text = re.sub(r"(?m)^port = 25$", f"port = {port}", text)  # [smtp] port only
    text = text.replace("connections = 8", f"connections = {connections}")
    config.write_text(text, encoding="utf-8")


def _prepare(db_url: str, count: int) -> int:
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            people(session, count)
            issue = approved(session)
            assert issue.id is not None
            return issue.id
    finally:
        engine.dispose()


def _received(handler: RecordingHandler) -> dict[str, list[str]]:
    """Message-IDs received per recipient."""
    seen: dict[str, list[str]] = defaultdict(list)
    parser = BytesHeaderParser(policy=policy.default)
    for message in list(handler.messages):
        message_id = str(parser.parsebytes(message.data)["Message-ID"])
        for recipient in message.recipients:
            seen[recipient].append(message_id)
    return seen


def test_a_send_killed_three_times_loses_nothing_and_doubles_only_what_is_in_doubt(
    project: Path, db_url: str
) -> None:
    # 5,000 recipients; `mailer send` is killed with SIGKILL at three random moments and
    # started again, then left to finish.
    assert run("init").exit_code == 0
    issue_id = _prepare(db_url, 5000)
    rng = random.Random(20270107)
    with running() as (controller, handler):
        _use_smtp(project, controller.port)
        for kill in range(3):
            before = len(handler.messages)
            target = before + rng.randint(200, 1200)
            child = subprocess.Popen(
                [*MAILER, "send", str(issue_id), "--yes"],
                cwd=project,
                env={**os.environ, "COLUMNS": "200"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 120
            while len(handler.messages) < target and child.poll() is None:
                assert time.monotonic() < deadline, f"kill {kill}: the send made no progress"
                time.sleep(0.01)
            assert child.poll() is None, "the send finished before it could be killed"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finished = subprocess.run(
            [*MAILER, "send", str(issue_id), "--yes"],
            cwd=project,
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert finished.returncode == 0, finished.stderr
        received = _received(handler)

    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            emails = {c.id: c.email for c in session.exec(select(Contact))}
            rows = {emails[d.contact_id]: d for d in session.exec(select(Delivery))}
            report = outbox.report(session, issue_id)
            status = issues.get(session, issue_id).status
    finally:
        engine.dispose()
    assert status is IssueStatus.SENT
    # Every recipient received it at least once...
    assert set(received) == set(rows)
    assert len(received) == 5000
    # ...copies only where the row is in doubt, and always with the same Message-ID.
    doubled = {email: ids for email, ids in received.items() if len(ids) > 1}
    for email, ids in doubled.items():
        assert rows[email].in_doubt, f"{email} received {len(ids)} copies but is not in doubt"
        assert len(set(ids)) == 1
    # The report matches what the server received.
    assert report.counts == {DeliveryStatus.SENT: 5000}
    assert report.in_doubt >= len(doubled)
    assert report.in_doubt > 0  # the kills left claimed rows without a reply
    assert report.in_doubt == sum(1 for row in rows.values() if row.in_doubt)
    assert "issue is sent" in finished.stdout


@pytest.mark.postgres
def test_three_workers_share_one_issue_on_postgresql(project: Path, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers share an outbox only on PostgreSQL")
    assert run("init").exit_code == 0
    issue_id = _prepare(db_url, 3000)
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            issue = issues.get(session, issue_id)
            start(session, issue)
    finally:
        engine.dispose()
    with running() as (controller, handler):
        _use_smtp(project, controller.port, connections=2)
        workers = [
            subprocess.Popen(
                [*MAILER, "worker", "--once"],
                cwd=project,
                env={**os.environ, "COLUMNS": "200"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [worker.communicate(timeout=300) for worker in workers]
        received = _received(handler)
    for worker, (_, errors) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, errors
    sent_by = [
        int(out.split("Worker stopped: ")[1].split(" sent")[0].replace(",", ""))
        for out, _ in outputs
    ]
    assert sum(sent_by) == 3000
    assert sum(1 for n in sent_by if n > 0) >= 2, sent_by
    assert len(received) == 3000
    assert all(len(ids) == 1 for ids in received.values())
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            assert outbox.report(session, issue_id).counts == {DeliveryStatus.SENT: 3000}
            assert issues.get(session, issue_id).status is IssueStatus.SENT
    finally:
        engine.dispose()


def test_ctrl_c_stops_a_send_cleanly_and_a_second_run_resumes(project: Path, db_url: str) -> None:
    # SIGINT (Ctrl-C) to a real `mailer send`: claimed rows are given back, none in doubt.
    assert run("init").exit_code == 0
    issue_id = _prepare(db_url, 600)
    with running(RecordingHandler(delay=0.01)) as (controller, handler):
        _use_smtp(project, controller.port, connections=2)
        child = subprocess.Popen(
            [*MAILER, "send", str(issue_id), "--yes"],
            cwd=project,
            env={**os.environ, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(handler.messages) < 50:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)
        out, errors = child.communicate(timeout=60)
        assert child.returncode == 0, errors
        assert "Stopping: finishing messages in flight" in errors
        stopped_at = len(handler.messages)
        assert stopped_at < 600
        engine = db.create_engine(db_url)
        try:
            with Session(engine) as session:
                counts = outbox.counts(session, issue_id)
                assert DeliveryStatus.CLAIMED not in counts
                assert counts[DeliveryStatus.SENT] == stopped_at
                assert outbox.report(session, issue_id).in_doubt == 0
        finally:
            engine.dispose()
        resumed = subprocess.run(
            [*MAILER, "send", str(issue_id), "--yes"],
            cwd=project,
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert "Resuming bulletin 2027/05" in resumed.stdout
        received = _received(handler)
    assert len(received) == 600
    assert all(len(ids) == 1 for ids in received.values())
    assert "issue is sent" in resumed.stdout
    assert out
