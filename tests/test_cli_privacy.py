"""Bounces, complaints, subject access and erasure, tried as a new user would.

The demo bulletin goes out through the capture; `mailer bounces serve` runs as a real
process; a remote server's DSN and a mailbox provider's complaint arrive over SMTP; then
the address is exported, erased and looked for everywhere on disk.
"""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from pathlib import Path

from tests.helpers import write_csv
from tests.outbox_fixtures import addressed, wire
from tests.smtp_server import free_port
from tests.test_cli import run

MAILER = [sys.executable, "-m", "mailer"]
CORPUS = Path(__file__).parent / "data" / "bounces"
DOMAIN = "lepnetwork.example"


def _captured(project: Path) -> dict[str, str]:
    """Each reader's address and the envelope sender of their copy (its Return-Path)."""
    parser = BytesParser(policy=policy.default)
    found: dict[str, str] = {}
    for path in (project / "var" / "mail").rglob("*.eml"):
        message = parser.parsebytes(path.read_bytes(), headersonly=True)
        found[str(message["To"].addresses[0].addr_spec)] = str(message["Return-Path"]).strip("<>")
    return found


@contextmanager
def bounce_endpoint(project: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`mailer bounces serve` as a process, once it says it is listening."""
    port = free_port()
    process = subprocess.Popen(
        [*MAILER, "bounces", "serve", "--port", str(port)],
        cwd=project,
        env={**os.environ, "COLUMNS": "200"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        said = ""
        while f"Bounce endpoint on 127.0.0.1:{port}" not in said:
            line = process.stderr.readline()
            assert line, said  # it stopped without listening
            said += line
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stderr.close()


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(2)  # Ctrl-C
    _, rest = process.communicate(timeout=20)
    assert process.returncode == 0, rest
    return rest


def _until(condition: str, *args: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        output = run(*args).output
        if condition in output:
            return output
        assert time.monotonic() < deadline, output
        time.sleep(0.2)


def _everything_on_disk(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_a_bounce_and_a_complaint_suppress_then_export_and_erase_leave_nothing(
    project: Path, db_url: str
) -> None:
    assert run("init", "--demo").exit_code == 0
    assert run("issue", "approve", "1").exit_code == 0
    sent = run("send", "1", "--yes")
    assert "168 sent" in sent.output, sent.output
    readers = _captured(project)
    assert len(readers) == 168
    gone, annoyed = sorted(readers)[:2]
    verp = readers[gone]
    assert verp.startswith("bounces+") and verp.endswith(f"@{DOMAIN}")

    # The remote server bounces one copy to its VERP return path...
    dsn = (
        wire((CORPUS / "postfix-permanent.eml").read_bytes())
        .replace(b"ann.gone@d2n2.example", gone.encode())
        .replace(f"bounces@{DOMAIN}".encode(), verp.encode())
    )
    # ...and a mailbox provider reports another reader's complaint to fbl@.
    complaint = addressed(
        wire((CORPUS / "yahoo-complaint.eml").read_bytes()), readers[annoyed]
    ).replace(b"fi.annoyed@yahoo.example", annoyed.encode())
    with bounce_endpoint(project) as (port, server):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.sendmail("", [verp], dsn) == {}
            fbl = f"fbl@{DOMAIN}"
            assert client.sendmail("feedback@arf.yahoo.example", [fbl], complaint) == {}
        told = _stop(server)
    assert f"Report to {verp}: permanent for contact" in told
    assert "complaint for contact" in told and "Bounce endpoint stopped" in told

    listed = _until("2 events", "bounces", "list")
    assert "permanent" in listed and "complaint" in listed and "550" in listed
    # Both are out of the bulletin's audience and out of the newsletter's.
    assert "166 recipients" in run("audience", "show", "bulletin").output
    assert "suppressed" in run("contacts", "list", "--search", gone).output

    # Subject access: everything held, as JSON.
    out = project / "gone.json"
    exported = run("subject", "export", gone, "--out", str(out))
    assert exported.exit_code == 0, exported.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["email"] == gone and data["contact_id"]
    assert data["profile"]["organisation"] and data["profile"]["name"]
    assert data["lawful_basis"]["basis"] == "legitimate_interest"
    assert {s["status"] for s in data["subscriptions"]} == {"bounced"}
    assert [d["status"] for d in data["deliveries"]] == ["sent"]
    assert [b["kind"] for b in data["bounces"]] == ["permanent"]
    assert data["suppressed"]["reason"] == "bounce"

    # Erasure asks first; piped input cannot confirm it.
    unconfirmed = run("subject", "erase", gone)
    assert unconfirmed.exit_code == 2
    assert "add --yes to confirm" in unconfirmed.output
    erased = run("subject", "erase", gone, "--yes")
    assert erased.exit_code == 0, erased.output
    assert "1 contacts" in erased.output and "1 deliveries" in erased.output
    database = Path(db_url.removeprefix("sqlite:///"))
    wal = database.with_name(database.name + "-wal")
    if db_url.startswith("sqlite"):  # old page images do not linger in the write-ahead log
        assert not wal.exists() or wal.stat().st_size == 0
    # All that is left is the hashed suppression, and that is what an export shows.
    again = run("subject", "export", gone)
    assert again.exit_code == 0, again.output
    left = json.loads(again.stdout)
    assert left["contact_id"] is None and "profile" not in left
    assert left["bounces"] == left["complaints"] == left["signups"] == []
    assert left["suppressed"]["reason"] == "bounce"
    assert "suppressed" not in run("contacts", "list", "--search", gone).output

    # A later import of the address is refused, naming the line.
    csv_file = write_csv(
        project / "again.csv",
        "email,name,organisation,role,lawful_basis,consented_at,source,publications\n"
        f"{gone},Back Again,D2N2,officer,legitimate_interest,,re-import,bulletin\n",
    )
    imported = run("contacts", "import", str(csv_file))
    assert "again.csv (UTF-8, 1 rows): 0 added, 0 updated, 0 unchanged, 0 skipped, 1 rejected" in (
        imported.output
    )
    assert "\n2\temail\t" in imported.output  # not a terminal: tab-separated rows
    assert "the address is suppressed" in imported.output
    # The send report keeps its totals as anonymous counts.
    assert "168" in run("issue", "report", "1").output

    # The audit log says who did what, and never names the erased address.
    log = run("audit", "--limit", "500").output
    for action in ("issue:approve", "issue:send", "subject:export", "subject:erase", "bounce"):
        assert action in log, action
    assert gone not in log
    assert "0 deliveries" in run("retention").output

    if db_url.startswith("sqlite"):
        # Not in the database file, its write-ahead log, the captured mail or anywhere.
        assert database.stat().st_size > 100_000
        # (The CSV files and the export are the user's own files, outside var/.)
        disk = _everything_on_disk(project / "var") + _everything_on_disk(database.parent)
        assert gone.encode() not in disk
        assert annoyed.encode() in disk  # the complainer is suppressed, not erased
