"""`mailer send`, `mailer worker` and `mailer issue report`, as staff use them on the demo."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from mailer import db, delivery, issues, outbox, publications
from tests.conftest import LISTS
from tests.smtp_server import RecordingHandler, running
from tests.test_cli import run
from tests.test_sending_processes import _use_smtp


def _demo_approved() -> None:
    assert run("init", "--demo").exit_code == 0
    approved = run("issue", "approve", "1")
    assert approved.exit_code == 0, approved.output


def test_the_demo_bulletin_goes_out_through_the_capture(project: Path) -> None:
    _demo_approved()
    sent = run("send", "1", "--yes")
    assert sent.exit_code == 0, sent.output
    assert "Queued 168 deliveries for bulletin 2027/01" in sent.output
    assert "168 sent, 0 deferred, 0 failed this run; issue is sent" in sent.output
    captured = list((project / "var" / "mail").rglob("*.eml"))
    assert len(captured) == 168
    message = BytesParser(policy=policy.default).parsebytes(captured[0].read_bytes())
    assert message.defects == []
    assert str(message["Subject"]).startswith("LEP Network Bulletin 2027/01")
    report = run("issue", "report", "1")
    assert report.exit_code == 0, report.output
    assert "bulletin 2027/01 (issue 1, sent)" in report.output
    assert "\nsent\t168\n" in report.output  # not a terminal: tab-separated rows
    assert "messages/s" in report.output
    again = run("send", "1", "--yes")
    assert again.exit_code == 2
    assert "only an approved issue can be sent" in again.output


def test_the_demo_newsletter_goes_to_a_real_smtp_server_and_the_report_is_right(
    project: Path,
) -> None:
    assert run("init", "--demo").exit_code == 0
    assert run("issue", "approve", "2").exit_code == 0
    gone = "eleanor.lewis@black-country.demo.example"
    with running(RecordingHandler(rcpt_faults={gone: 550})) as (controller, handler):
        _use_smtp(project, controller.port)
        sent = run("send", "2", "--yes")
    assert sent.exit_code == 0, sent.output
    assert "274 sent, 0 deferred, 1 failed this run" in sent.output
    assert len(handler.messages) == 274
    report = run("issue", "report", "2")
    assert "newsletter 2027/01 (issue 2, sent)" in report.output
    assert f"{gone}: 550" in report.output
    # The bounced address is now out of every audience.
    assert "274 recipients" in run("audience", "show", "newsletter").output


def test_a_draft_cannot_be_sent(project: Path) -> None:
    assert run("init", "--demo").exit_code == 0
    refused = run("send", "1", "--yes")
    assert refused.exit_code == 2
    assert "draft: only an approved issue can be sent" in refused.output


def test_the_worker_drains_and_a_second_sqlite_worker_is_told(project: Path, db_url: str) -> None:
    _demo_approved()
    with running() as (controller, handler):
        _use_smtp(project, controller.port)
        # A send stopped before it began leaves the whole outbox for the worker.
        engine: Engine = db.create_engine(db_url)
        try:
            with Session(engine) as session:
                issue = issues.get(session, 1)
                outbox.enqueue(session, issue, publications.load(LISTS, issue.publication).audience)
                session.commit()
            if engine.dialect.name == "sqlite":
                with delivery.single_sender(engine, project / "var"):
                    busy = run("worker", "--once")
                assert busy.exit_code == 2
                assert "one sender runs at a time" in busy.output
        finally:
            engine.dispose()
        worked = run("worker", "--once")
    assert worked.exit_code == 0, worked.output
    assert "Worker stopped: 168 sent" in worked.output
    assert len(handler.messages) == 168
