"""Scriptable commands: one JSON document per listing or report, tab-separated rows when
piped, warnings on stderr, and years that are checked."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import Result

from mailer import bounces, calendar, db, settings
from mailer.models import BounceKind
from tests.helpers import MAILER, cli
from tests.test_cli import run

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _json(*args: str) -> Any:
    """`mailer ARGS --json`: it succeeds, and its stdout is exactly one JSON document."""
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _document(*args: str) -> dict[str, Any]:
    """A listing's or report's document: an object that always says its warnings."""
    data = _json(*args)
    assert isinstance(data, dict) and data["warnings"] == [], data
    return data


def test_issues_as_json_list_show_and_report(project: Path) -> None:
    # The demo bulletin sent through the capture, then listed, shown and reported on.
    assert run("init", "--demo").exit_code == 0
    assert run("issue", "approve", "1", "--by", "approver@lepnetwork.example").exit_code == 0
    assert run("send", "1", "--yes").exit_code == 0
    listed = _document("issue", "list")["issues"]
    assert [(i["id"], i["publication"], i["number"]) for i in listed] == [
        (2, "newsletter", "2027/01"),
        (1, "bulletin", "2027/01"),
    ]
    bulletin = listed[1]
    assert bulletin["status"] == "sent"
    assert bulletin["slot_at"] == "2027-01-07T09:30:00+00:00"  # ISO 8601 with its offset
    assert bulletin["approved_by"] == "approver@lepnetwork.example"
    assert bulletin["approved_at"].endswith("+00:00")
    assert _document("issue", "list", "--status", "draft")["issues"][0]["id"] == 2

    shown = _document("issue", "show", "1")
    assert shown["issue"] == bulletin
    assert shown["sections"][0]["heading"] == "Updates from government and agencies"
    first = shown["sections"][0]["items"][0]
    assert first["title"].startswith("Skills England publishes")
    assert first["image"]["alt"] and first["image"]["width"] == 1200
    assert all({"starts_on", "title", "location", "link"} == set(e) for e in shown["events"])
    assert shown["events"] and shown["events"][0]["starts_on"].startswith("2027-")
    lint = shown["lint"]
    assert lint["errors"] == 0
    assert lint["warnings"] == len(lint["findings"])

    report = _document("issue", "report", "1")
    assert report["issue"]["id"] == 1
    assert report["counts"] == {
        "queued": 0,
        "claimed": 0,
        "sent": 168,
        "deferred": 0,
        "failed": 0,
        "suppressed": 0,
    }
    assert report["total"] == 168 and report["in_doubt"] == 0
    assert report["duration_seconds"] > 0 and report["messages_per_second"] > 0
    assert report["started_at"] <= report["finished_at"]
    assert report["failures"] == [] and report["reply_classes"] == {}


def test_contacts_orgs_audience_and_events_as_json(project: Path) -> None:
    assert run("init", "--demo").exit_code == 0
    found = _document("contacts", "list", "--org", "D2N2", "--role", "chair")
    assert found["shown"] == found["total"] == 1
    (chair,) = found["contacts"]
    assert chair["email"].endswith("@d2n2.demo.example")
    assert chair["organisation"].startswith("Derby")
    assert [chair[k] for k in ("organisation_kind", "role", "status")] == ["lep", "chair", "active"]
    assert chair["publications"] == ["bulletin", "newsletter"]
    assert chair["consented_at"] is None  # legitimate interest: no consent time
    page = _document("contacts", "list", "--limit", "10")
    assert (page["shown"], page["total"]) == (10, 275)

    organisations = _document("orgs", "list")["organisations"]
    assert len(organisations) == 55
    assert sum(o["kind"] == "lep" for o in organisations) == 38
    d2n2 = next(o for o in organisations if o["short_name"] == "D2N2")
    assert d2n2["contacts"] >= 1 and d2n2["board_group"]
    assert sum(o["contacts"] for o in organisations) == 275

    bulletin = _document("audience", "show", "bulletin")
    assert bulletin["publication"] == "bulletin" and bulletin["total"] == 168
    assert {c["organisation_kind"] for c in bulletin["counts"]} == {"lep"}  # the firewall
    assert sum(c["contacts"] for c in bulletin["counts"]) == 168
    newsletter = _document("audience", "show", "newsletter")
    assert newsletter["total"] == 275
    assert "government" in {c["organisation_kind"] for c in newsletter["counts"]}

    diary = _document("events", "list", "--all")["events"]
    assert diary and all(e["audience"] in ("internal", "external", "both") for e in diary)
    assert all(len(e["starts_on"]) == 10 and e["starts_on"][4] == "-" for e in diary)


def test_bounces_audit_and_config_as_json(
    project: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("init", "--demo").exit_code == 0
    listed = _document("contacts", "list", "--limit", "1")["contacts"][0]
    # A bounce naming a contact, without our token: recorded for staff, nothing changed.
    engine = db.create_engine(db_url)
    try:
        with Session(engine) as session:
            report = bounces.Report(
                BounceKind.PERMANENT, (listed["email"],), None, "5.1.1 user unknown", 550
            )
            raw = b"Subject: Undelivered\r\n\r\nsecret raw report\r\n"
            bounces.record(session, report, raw, settings.load().settings.bounces, source="imap")
    finally:
        engine.dispose()
    (event,) = _document("bounces", "list")["events"]
    assert (event["kind"], event["contact_id"], event["code"]) == (
        "permanent",
        listed["contact_id"],
        550,
    )
    assert event["diagnostic"] == "5.1.1 user unknown" and event["source"] == "imap"
    assert event["created_at"].endswith("+00:00")
    assert "raw" not in event and "email_hash" not in event

    entries = _document("audit", "--action", "contacts:import")["entries"]
    assert entries and entries[0]["target"] == "demo_contacts.csv"
    assert "275 added" in entries[0]["detail"]
    assert entries[0]["at"].endswith("+00:00")

    monkeypatch.setenv("MAILER_SMTP_PASSWORD", "hunter2")
    result = run("config", "--json")
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    config = json.loads(result.stdout)
    assert config["warnings"] == []
    assert config["path"] == str(project / "config.toml")
    assert config["settings"]["network.domain"] == "lepnetwork.example"
    assert config["settings"]["database.echo"] is False
    assert config["secrets_set"]["smtp_password"] is True
    assert config["secrets_set"]["secret_key"] is False


def test_calendar_and_staff_json_keep_their_shape_and_warnings_go_to_stderr(
    project: Path,
) -> None:
    assert run("init", "--demo").exit_code == 0
    slots = _json("calendar", "--year", "2027")
    bulletins = [s for s in slots if s["publication"] == "bulletin"]
    assert len(bulletins) == 22 and bulletins[0]["send_at"] == "2027-01-07T09:30:00+00:00"
    # One bulletin skipped: the year falls short of its target, which is a warning.
    assert run("calendar", "skip", str(bulletins[-1]["id"])).exit_code == 0
    shown = run("calendar", "--year", "2027", "--json")
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.stdout)) == len(slots)
    assert "warning: 21 bulletins planned; the target is 22" in shown.stderr
    table = run("calendar", "--year", "2027")
    assert "warning" not in table.stdout and "the target is 22" in table.stderr
    assert table.stdout.startswith("slot\tpublication\tgoes out\tdeadline\tstatus\tissue\n")

    accounts = _json("staff", "list")
    assert {a["email"] for a in accounts} == {
        "editor@lepnetwork.example",
        "approver@lepnetwork.example",
    }
    assert all(a["disabled"] is False and a["last_login_at"] is None for a in accounts)


def _clean_usage_error(result: Result, option: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert f"Invalid value for '{option}'" in result.output, result.output


def test_years_out_of_range_are_clean_errors() -> None:
    # Checked while the command line is read: no configuration or database is needed.
    for given in ("99999", "0", "1999", "2101", "-5"):
        _clean_usage_error(run("calendar", "--year", given), "--year")
        _clean_usage_error(run("calendar", "plan", "--year", given), "--year")
    # The domain refuses them too, whichever door asks.
    for year in (calendar.FIRST_YEAR - 1, calendar.LAST_YEAR + 1):
        with pytest.raises(calendar.CalendarError, match=f"the year {year} is not between"):
            calendar.check_year(year)


# 185 characters, one word of 34: wider than a table cell in 200 columns.
LONG_NAME = "Very Long Name Media " * 7 + "Supercalifragilisticexpialidocious Ltd"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@SQLITE_ONLY
def test_piped_tables_are_tab_separated_and_a_terminal_gets_rich_tables(project: Path) -> None:
    # Real processes: through a pipe, rows are tab-separated and nothing wraps, however
    # long a name or path (wider than the 200 columns these processes are given).
    assert run("init").exit_code == 0
    added = run("orgs", "add", LONG_NAME, "--kind", "media", "--short-name", "VLN")
    assert added.exit_code == 0, added.output
    piped = cli(project, "orgs", "list", "--kind", "media")
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0] == "name\tshort name\tkind\tboard group\tcontacts"
    assert f"{LONG_NAME}\tVLN\tmedia\t\t0" in lines
    assert all(line.count("\t") == 4 for line in lines)
    assert "organisations" in piped.stderr and "organisations" not in piped.stdout
    settings_rows = cli(project, "config").stdout.splitlines()
    assert settings_rows[0] == "key\tvalue\tmeaning"
    url = next(row.split("\t") for row in settings_rows if row.startswith("database.url\t"))
    assert url[1] == os.environ["MAILER_DATABASE_URL"]  # a long path, on one line

    # On a terminal, the same command draws a Rich table.
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [*MAILER, "orgs", "list", "--kind", "media"],
        cwd=project,
        env={**os.environ, "COLUMNS": "120"},
        stdout=follower,
        stderr=subprocess.PIPE,
    ) as process:
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            drawn += chunk
        assert process.wait(timeout=60) == 0
    os.close(leader)
    text = ANSI.sub("", drawn.decode())
    assert "┃ name" in text and "VLN" in text and "\t" not in text
