"""What an operator sees and relies on: the lead as a lease, alerts that are retried,
health, readiness and metrics, `mailer status`, and logs a machine can read."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import clock, leadership
from mailer.cli.logs import JsonFormatter, TextFormatter
from mailer.models import Slot, SlotStatus
from mailer.transports import SmtpTransport
from mailer.web.app import create_app
from tests.helpers import exited_sender
from tests.outbox_fixtures import config_for, drafted, people
from tests.smtp_server import RecordingHandler, running
from tests.test_cli import run
from tests.test_daemon import SLOT, _alerts, _daemon, _tick, _written

AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def test_the_lead_is_a_lease_with_terms_that_a_woken_leader_cannot_renew(
    session: Session,
) -> None:
    with clock.frozen(AT) as frozen:
        first = leadership.claim(session, "host:1:a", 10)
        assert first is not None and first.term == 1 and first.held()
        assert leadership.claim(session, "host:2:b", 10) is None  # held
        # The first is paused beyond its lease: by its own clock it may no longer act,
        # and once the lease has run out in the database the other takes the lead.
        first.until = 0.0
        assert not first.held()
        frozen.advance(timedelta(seconds=11))
        second = leadership.claim(session, "host:2:b", 10)
        assert second is not None and second.term == 2
        assert not leadership.renew(session, first)  # woken: another holds a newer term
        leadership.note(session, first, ticked=True, error="stale")  # counts for nothing
        lead = leadership.current(session)
        assert lead is not None and lead.holder == "host:2:b" and lead.last_error == ""
        leadership.release(session, second)
        third = leadership.claim(session, "host:1:a", 10)  # released: free at once
        assert third is not None and third.term == 3


def test_a_missed_slot_alert_the_relay_refused_is_sent_again_once(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    people(session, 1)
    _written(drafted, session)
    session.commit()
    handler = RecordingHandler(rcpt_faults={"comms@lepnetwork.example": 451})
    with running(handler) as (controller, _):
        daemon = _daemon(engine, tmp_path, SmtpTransport("127.0.0.1", controller.port))
        with clock.frozen(datetime(2027, 3, 4, 9, 0, tzinfo=UTC)) as frozen:
            asyncio.run(_tick(daemon))
            frozen.set(SLOT)
            asyncio.run(_tick(daemon))  # missed; the alert is refused
            slot = session.exec(select(Slot).where(col(Slot.number) == "2027/05")).one()
            assert slot.status is SlotStatus.MISSED and slot.missed_alerted_at is None
            handler.rcpt_faults.clear()
            frozen.advance(timedelta(minutes=1))
            asyncio.run(_tick(daemon))
            frozen.advance(timedelta(minutes=1))
            asyncio.run(_tick(daemon))
    missed = [s for s in _alerts(handler) if s.startswith("MISSED")]
    assert missed == ["MISSED: Bulletin 2027/05 was not sent"]


def _probe_app(engine: Engine, tmp_path: Path, state: str) -> TestClient:
    config = config_for(engine.url.render_as_string(hide_password=False), tmp_path)
    app = create_app(config, engine, daemon_state=lambda: state)
    return TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 5000))


def test_health_readiness_and_metrics_say_whether_a_daemon_keeps_the_calendar(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    client = _probe_app(engine, tmp_path, "following")
    assert client.get("/healthz").text == "ok\n"
    unready = client.get("/readyz")
    assert unready.status_code == 503
    assert unready.json()["checks"]["daemon"] == "following, but no daemon leads"
    lease = leadership.claim(session, "elsewhere:1:x", 60)
    assert lease is not None
    assert "last tick was never" in client.get("/readyz").json()["checks"]["daemon"]
    leadership.note(session, lease, ticked=True)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "checks": {"database": "ok", "schema": "ok", "daemon": "ok"},
    }
    people(session, 3)
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    assert 'mailer_contacts{status="active"} 3.0' in scraped.text
    assert "mailer_leader 0.0" in scraped.text and "mailer_leader_present 1.0" in scraped.text
    assert re.search(r"mailer_last_tick_age_seconds \d", scraped.text)
    outsider = TestClient(client.app, base_url="http://x", client=("192.0.2.9", 1))
    assert outsider.get("/metrics").status_code == 403


def test_status_says_who_leads_and_fails_when_nobody_does(project: Path, engine: Engine) -> None:
    assert run("init", "--demo").exit_code == 0
    nobody = run("status", "--json")
    assert nobody.exit_code == 1
    assert json.loads(nobody.stdout)["leader"] == "" and not json.loads(nobody.stdout)["healthy"]
    from mailer import db
    from mailer.settings import load

    real = db.create_engine(load(project / "config.toml").database_url)
    with Session(real) as session:
        lease = leadership.claim(session, "host:7:z", 60)
        assert lease is not None
        leadership.note(session, lease, ticked=True, error="tick: relay down")
    real.dispose()
    seen = run("status", "--json")
    assert seen.exit_code == 0, seen.output
    data = json.loads(seen.stdout)
    assert data["leader"] == "host:7:z" and data["healthy"] and data["term"] == 1
    assert data["last_error"] == "tick: relay down"
    assert data["next_slot"]["publication"] in ("bulletin", "newsletter")
    text = run("status")
    assert "Leader:        host:7:z" in text.stdout and "Next slot:" in text.stdout


def test_log_lines_carry_an_iso_time_with_its_zone_and_json_is_one_object_a_line() -> None:
    record = logging.LogRecord("mailer.daemon", logging.INFO, "x", 1, "slot %s: sent", (5,), None)
    record.issue = 3
    line = TextFormatter().format(record)
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO    mailer\.daemon: "
        r"slot 5: sent issue=3$",
        line,
    ), line
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "slot 5: sent" and data["issue"] == 3
    assert data["level"] == "INFO" and data["logger"] == "mailer.daemon"
    assert datetime.fromisoformat(data["time"]).tzinfo is not None


def test_a_leader_whose_process_is_gone_is_replaced_at_once(session: Session) -> None:
    gone = exited_sender("lead")
    with clock.frozen(AT):
        assert leadership.claim(session, gone, 60) is not None
        taken = leadership.claim(session, "host:9:new", 60)  # no wait for the lease
        assert taken is not None and taken.term == 2
        assert leadership.claim(session, exited_sender("other"), 60) is None  # alive holder


def test_readiness_wants_a_fresh_tick_from_the_leader(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    client = _probe_app(engine, tmp_path, "leading")
    with clock.frozen(AT) as frozen:
        lease = leadership.claim(session, "host:1:a", 600)
        assert lease is not None
        leadership.note(session, lease, ticked=True)
        assert client.get("/readyz").status_code == 200
        frozen.advance(timedelta(minutes=5))  # beyond [ops] tick_stale_seconds (180)
        stale = client.get("/readyz")
    assert stale.status_code == 503
    assert stale.json()["checks"]["daemon"] == "leading; the leader's last tick was 300 s ago"
