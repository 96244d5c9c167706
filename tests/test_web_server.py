"""A real `mailer serve` attacked over TCP: sessions ended from the command line, sign-ups
that never wait for the relay, forwarded addresses, uploads refused before they are read."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from sqlmodel import Session

from mailer import db, staff
from mailer.models import StaffRole
from tests.helpers import cli
from tests.outbox_fixtures import people
from tests.smtp_server import RecordingHandler, free_port, running
from tests.test_cli import run
from tests.test_sending_processes import _use_smtp

MAILER = [sys.executable, "-m", "mailer"]
ADMIN = "jo@lepnetwork.example"


@dataclass
class HoldingHandler(RecordingHandler):
    """A relay that takes each message's DATA and then holds it until released."""

    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        self.holding.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(project: Path, db_url: str, tmp_path: Path) -> Iterator[tuple[str, HoldingHandler, int]]:
    """`mailer serve` on a fresh database whose relay holds every message until released;
    yields the site's address, the relay's handler and the server's process id."""
    handler = HoldingHandler()
    with running(handler) as (controller, _):
        _use_smtp(project, controller.port)
        assert run("init").exit_code == 0
        engine = db.create_engine(db_url)
        with Session(engine) as session:
            people(session, 1)  # reader0@lep0.example, subscribed to the newsletter
            # Another admin: the last one could be neither demoted nor disabled.
            staff.add(session, "second@lepnetwork.example", StaffRole.ADMIN, "a-second-password")
            session.commit()
        engine.dispose()
        added = cli(
            project,
            "staff",
            "add",
            ADMIN,
            "--role",
            "admin",
            "--password-stdin",
            stdin="the-first-password\n",
        )
        assert added.returncode == 0, added.stderr
        port = free_port()
        with (tmp_path / "serve.log").open("w") as log:
            process = subprocess.Popen(
                [*MAILER, "serve", "--no-daemon", "--port", str(port)],
                cwd=project,
                env={**os.environ, "COLUMNS": "200"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait(lambda: _listening(port) or process.poll() is not None, 60, "the site")
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                yield f"http://127.0.0.1:{port}", handler, process.pid
            finally:
                handler.release.set()
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


def _log_in(site: str, password: str) -> str:
    with httpx.Client(base_url=site, follow_redirects=False) as client:
        form = client.get("/staff/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        answer = client.post(
            "/staff/login",
            data={"csrf": csrf.group(1), "email": ADMIN, "password": password, "next": "/staff"},
        )
        assert answer.status_code == 303, answer.text
        cookie = client.cookies.get("mailer_staff")
        assert cookie
        return cookie


def _opens(site: str, cookie: str) -> bool:
    """Whether a copy of the cookie, from another program, opens the console."""
    answer = httpx.get(f"{site}/staff", headers={"cookie": f"mailer_staff={cookie}"})
    return answer.status_code == 200


def _raw(site: str, request: bytes, *, then: bytes = b"") -> str:
    """Send raw bytes and return the response's head (status line and headers)."""
    port = int(site.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request + then)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


# The doors are HTTP and the command line; PostgreSQL's part is covered in-process.
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE
def test_sessions_end_from_the_command_line_and_the_site_holds_its_limits(
    server: tuple[str, HoldingHandler, int], project: Path
) -> None:
    site, relay, _ = server
    # Sign-ups answer while the relay still holds the confirmation: a new address and a
    # subscribed one alike (neither waits for SMTP on the request path).
    for email in ("new.reader@example.org", "reader0@lep0.example"):
        answer = httpx.post(
            f"{site}/signup",
            data={"name": "Reader", "email": email, "organisation": "", "consent": "yes"},
            timeout=20,
        )
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        assert not relay.release.is_set()
    _wait(relay.holding.is_set, 30, "the confirmation to reach the relay")
    assert relay.messages == []  # held: the pages above did not wait for it
    relay.release.set()
    _wait(lambda: len(relay.messages) == 1, 30, "the confirmation to be accepted")
    assert relay.messages[0].recipients == ["new.reader@example.org"]

    # X-Forwarded-For from a client is not believed (no trusted proxies): the sign-up limit
    # counts 127.0.0.1 whatever the header says.
    statuses = [
        httpx.post(
            f"{site}/signup",
            data={"name": "R", "email": f"r{i}@example.org", "consent": "yes"},
            headers={"x-forwarded-for": f"198.51.100.{i}"},
        ).status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]  # 2 above + 3 = per_ip_per_hour (5)

    # A copied cookie dies with every way a session ends at the command line.
    cookie = _log_in(site, "the-first-password")
    assert _opens(site, cookie)
    changed = cli(project, "staff", "password", ADMIN)
    assert changed.returncode == 0, changed.stderr
    password = changed.stdout.rsplit(": ", 1)[1].strip()
    assert not _opens(site, cookie)
    for command in (("staff", "role", ADMIN, "approver"), ("staff", "disable", ADMIN)):
        cookie = _log_in(site, password)
        ended = cli(project, *command)
        assert ended.returncode == 0, ended.stderr
        assert not _opens(site, cookie), command
    refused = httpx.post(f"{site}/staff/login", data={"email": ADMIN, "password": password})
    assert refused.status_code in (401, 403)
    assert cli(project, "staff", "enable", ADMIN).returncode == 0
    cookie = _log_in(site, password)
    listed = cli(project, "staff", "sessions", "--json")
    assert ADMIN in listed.stdout
    assert cli(project, "staff", "sessions", "--end-all", "--yes").returncode == 0
    assert not _opens(site, cookie)

    # An upload declared too large is refused before a byte is read; one without a login
    # is sent to the login page before its body is read.
    head = (
        "POST /staff/contacts/import HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {n}\r\n\r\n"
    )
    assert " 413 " in _raw(site, head.format(n=300 * 1024 * 1024).encode()).split("\r\n")[0]
    early = _raw(site, head.format(n=10 * 1024 * 1024).encode(), then=b"--b\r\n" + b"x" * 16384)
    assert " 303 " in early.split("\r\n")[0] and "/staff/login" in early
    # The trailing-slash redirect is relative: it never names the Host the client sent.
    moved = _raw(site, b"GET //evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert re.search(r"(?im)^location: /evil\.example\r?$", moved), moved


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


@SQLITE
def test_a_large_upload_is_streamed_to_disk_not_held_in_memory(
    server: tuple[str, HoldingHandler, int], tmp_path: Path
) -> None:
    site, _, pid = server
    cookie = _log_in(site, "the-first-password")
    csv = tmp_path / "big.csv"
    csv.write_bytes(b"mail,name\n" + b"someone@example.org,Someone Somebody\n" * 500_000)  # 18 MB
    with httpx.Client(base_url=site, headers={"cookie": f"mailer_staff={cookie}"}) as client:
        page = client.get("/staff/contacts/import")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        before = _rss_kib(pid)
        with csv.open("rb") as handle:
            answer = client.post(
                "/staff/contacts/import",
                data={"csrf": csrf.group(1)},
                files={"file": ("big.csv", handle, "text/csv")},
                timeout=120,
            )
        grown = _rss_kib(pid) - before
    assert answer.status_code == 422 and "big.csv:1: missing column(s): email" in answer.text
    print(f"an 18 MB upload grew the server by {grown} KiB")
    assert grown < 8 * 1024, f"the server grew by {grown} KiB for an 18 MB upload"
