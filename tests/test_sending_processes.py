"""Real `mailer send` and `mailer worker` processes: killed with SIGKILL, paused with SIGSTOP
beyond their lease, run side by side, and sending through a relay that misbehaves.

Each fault test checks the same promises: nobody is lost; a copy sent twice always has the
same Message-ID; duplicates stay within what was in flight; and the "in doubt" figure is
never below the real duplicates and, per crash, at most twice a sender's look-ahead above.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer import clock, db, issues, outbox
from mailer.models import Contact, Delivery, DeliveryStatus, IssueStatus
from tests.helpers import cli
from tests.outbox_fixtures import approved, people, start
from tests.smtp_server import RecordingHandler, running
from tests.test_cli import run

MAILER = [sys.executable, "-m", "mailer"]


def _use_smtp(project: Path, port: int, connections: int = 4, lease: int | None = None) -> None:
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('transport = "capture"', 'transport = "smtp"')
    text = re.sub(r"(?m)^port = 25$", f"port = {port}", text)  # [smtp] port only
    text = text.replace("connections = 8", f"connections = {connections}")
    if lease is not None:
        text = text.replace("claim_timeout_seconds = 300", f"claim_timeout_seconds = {lease}")
    config.write_text(text, encoding="utf-8")


def _lookahead(connections: int) -> int:
    """Deliveries a sender may have noted in its journal as being handed over and not yet
    sent: one per deliverer (it has twice as many as connections)."""
    return 2 * connections


@dataclass
class Outcome:
    received: dict[str, list[str]]
    rows: dict[str, Delivery]
    report: outbox.Report
    doubled: dict[str, list[str]]


def _exact(
    handler: RecordingHandler, db_url: str, issue_id: int, total: int, *, slack: int
) -> Outcome:
    """Check the promises (see the module's docstring) once the issue is sent; ``slack``
    is how far "in doubt" may exceed the real duplicates."""
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
    assert report.counts == {DeliveryStatus.SENT: total}
    # Nobody lost...
    assert set(received) == set(rows)
    assert len(received) == total
    # ...copies only where the row is in doubt, and always with the same Message-ID.
    doubled = {email: ids for email, ids in received.items() if len(ids) > 1}
    for email, ids in doubled.items():
        assert rows[email].in_doubt, f"{email} received {len(ids)} copies but is not in doubt"
        assert len(set(ids)) == 1
    assert report.in_doubt == sum(1 for row in rows.values() if row.in_doubt)
    assert len(doubled) <= report.in_doubt <= len(doubled) + slack, (len(doubled), slack)
    return Outcome(received, rows, report, doubled)


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
    # 2,000 recipients; `mailer send` is killed with SIGKILL at three random moments and
    # started again, then left to finish.
    assert run("init").exit_code == 0
    issue_id = _prepare(db_url, 2000)
    rng = random.Random(20270107)
    with running() as (controller, handler):
        _use_smtp(project, controller.port)
        for kill in range(3):
            before = len(handler.messages)
            target = before + rng.randint(150, 550)
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
        # Only rows handed over are in doubt: at most a look-ahead per kill beyond the copies
        # really received (it used to be every claimed row: a whole batch per kill).
        found = _exact(handler, db_url, issue_id, 2000, slack=3 * 2 * (4 + _lookahead(4)))
    assert found.report.in_doubt > 0  # the kills left rows handed over without a reply
    assert "issue is sent" in finished.stdout


@pytest.mark.postgres
def test_three_workers_share_one_issue_on_postgresql(project: Path, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers share an outbox only on PostgreSQL")
    assert run("init").exit_code == 0
    issue_id = _prepare(db_url, 1500)
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
    assert sum(sent_by) == 1500
    assert sum(1 for n in sent_by if n > 0) >= 2, sent_by
    assert len(received) == 1500
    assert all(len(ids) == 1 for ids in received.values())
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            assert outbox.report(session, issue_id).counts == {DeliveryStatus.SENT: 1500}
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


def _claims(db_url: str) -> dict[int, int]:
    """Deliveries claimed right now, per sender process id."""
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            holders = session.exec(
                select(Delivery.claimed_by).where(col(Delivery.status) == DeliveryStatus.CLAIMED)
            ).all()
    finally:
        engine.dispose()
    return dict(Counter(int(str(h).split(":")[1]) for h in holders if h))


def _issue_status(db_url: str, issue_id: int) -> IssueStatus:
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            return issues.get(session, issue_id).status
    finally:
        engine.dispose()


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


LEASE = 5  # seconds: the shortest claim timeout the settings allow


Reap = Callable[[list[subprocess.Popen[bytes]]], None]


@pytest.fixture
def reap() -> Iterator[Reap]:
    """Kill the given processes at the end of the test if they are still running."""
    chosen: list[subprocess.Popen[bytes]] = []
    yield chosen.extend
    for child in chosen:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
        child.wait(timeout=30)


def test_a_sender_paused_beyond_its_lease_sends_nothing_it_no_longer_holds(
    project: Path, db_url: str, tmp_path: Path, reap: Reap
) -> None:
    # SIGSTOP for twice the lease while the sender holds claims, then SIGCONT. On
    # PostgreSQL two other workers take its claims over and finish the issue while it is
    # paused; when it wakes it sends only what was already on its connections. On SQLite
    # nobody else may send meanwhile, and it goes on when it wakes, without a duplicate.
    postgres = db_url.startswith("postgresql")
    assert run("init").exit_code == 0
    total = 1200 if postgres else 600
    issue_id = _prepare(db_url, total)
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            start(session, issues.get(session, issue_id))
    finally:
        engine.dispose()
    connections = 2
    logs = [tmp_path / f"worker{n}.log" for n in range(3 if postgres else 1)]
    with running(RecordingHandler(delay=0.002)) as (controller, handler):
        _use_smtp(project, controller.port, connections=connections, lease=LEASE)
        workers = []
        for log in logs:
            with log.open("w") as out:
                workers.append(
                    subprocess.Popen(
                        [*MAILER, "worker", "--once"],
                        cwd=project,
                        env={**os.environ, "COLUMNS": "200"},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        reap(workers)
        by_pid = {w.pid: w for w in workers}
        _wait(lambda: len(handler.messages) >= total // 5, 120, "the send to start")
        holders = _claims(db_url)
        paused = by_pid[max((p for p in holders if p in by_pid), key=holders.__getitem__)]
        paused.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            held = _claims(db_url).get(paused.pid, 0)
            assert held > 2 * connections, "the paused sender should hold a batch of claims"
            if postgres:
                # The others take the claims over once the lease has run out, and finish.
                _wait(
                    lambda: _issue_status(db_url, issue_id) is IssueStatus.SENT,
                    120,
                    "the other workers to finish the issue",
                )
            else:
                busy = cli(project, "send", str(issue_id), "--yes")
                assert busy.returncode == 2
                assert "a sender is already running" in busy.stderr
            time.sleep(max(0.0, 2 * LEASE - (time.monotonic() - stopped)))  # the fault itself
        finally:
            paused.send_signal(signal.SIGCONT)
        for worker in workers:
            assert worker.wait(timeout=120) == 0, logs[workers.index(worker)].read_text()
        # Messages on its two connections at the pause may arrive twice; nothing more.
        found = _exact(handler, db_url, issue_id, total, slack=2 * (connections + _lookahead(2)))
    assert len(found.doubled) <= connections
    paused_log = logs[workers.index(paused)].read_text()
    if postgres:
        assert "taken over by another sender" in paused_log
        assert found.report.in_doubt > 0  # its rows handed over were sent again, in doubt
    else:
        assert found.report.in_doubt == 0
        assert "taken over" not in paused_log


def test_a_relay_that_drops_or_refuses_for_now_loses_nobody_and_says_what_is_in_doubt(
    project: Path, db_url: str
) -> None:
    # Through a real `mailer send`, each fault once per chosen recipient: 421 at RCPT, 421
    # after the message (DATA), the connection dropped in the middle of the message, and
    # the message stored but the connection dropped before its 250. Only the last two
    # leave the reply unknown: they, and only they, are in doubt, and the retry (the
    # back-off over, a second run) sends everyone else exactly once.
    assert run("init").exit_code == 0
    issue_id = _prepare(db_url, 240)
    faults = RecordingHandler(once=True)
    rcpt_421 = {f"reader{n}@lep{n % 7}.example" for n in range(0, 240, 12)}
    data_421 = {f"reader{n}@lep{n % 7}.example" for n in range(1, 240, 12)}
    cut = {f"reader{n}@lep{n % 7}.example" for n in range(2, 240, 24)}
    stored = {f"reader{n}@lep{n % 7}.example" for n in range(3, 240, 12)}
    faults.rcpt_faults.update(dict.fromkeys(rcpt_421, 421))
    faults.data_faults.update(dict.fromkeys(data_421, 421))
    faults.drop_during_data.update(cut)
    faults.drop_after_storing.update(stored)
    with running(faults) as (controller, handler):
        _use_smtp(project, controller.port)
        first = cli(project, "send", str(issue_id), "--yes")
        assert first.returncode == 0, first.stderr
        deferred = len(rcpt_421 | data_421 | cut | stored)
        assert f"{deferred} deliveries wait for a retry" in first.stdout
        report = cli(project, "issue", "report", str(issue_id))
        assert "421: 40" in report.stdout, report.stdout
        assert f"no reply after the message was sent: {len(cut) + len(stored)}" in report.stdout
        assert "In doubt: handed to the relay but no reply recorded" in report.stdout
        engine = db.create_engine(db_url)
        try:
            with Session(engine) as session:
                assert outbox.report(session, issue_id).in_doubt == len(cut) + len(stored)
                session.execute(  # the back-off is over
                    sa.update(Delivery)
                    .where(col(Delivery.status) == DeliveryStatus.DEFERRED)
                    .values(next_attempt_at=clock.now())
                )
                session.commit()
        finally:
            engine.dispose()
        second = cli(project, "send", str(issue_id), "--yes")
        assert second.returncode == 0, second.stderr
        assert "issue is sent" in second.stdout
        found = _exact(handler, db_url, issue_id, 240, slack=len(cut))
    assert set(found.doubled) == stored
    assert {e for e, row in found.rows.items() if row.in_doubt} == cut | stored
