"""`mailer doctor`, `mailer backup` and the deployment files of docs/deploy, against real
servers (aiosmtpd relays, mailer's own bounce endpoint, Dovecot), real keys and real files."""

from __future__ import annotations

import asyncio
import base64
import configparser
import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from mailer import bounces, db, doctor, messages
from mailer.doctor import Status
from mailer.settings import BounceSettings, SmtpSettings, WebSettings
from tests import imap_server
from tests.conftest import ROOT
from tests.smtp_server import RecordingHandler, free_port, running
from tests.test_cli import run

DOMAIN = "lepnetwork.example"
DEPLOY = ROOT / "docs" / "deploy"
MAILER_BIN = "/opt/mailer/.venv/bin/mailer"
CHECKS = ("configuration", "secret key", "database", "relay", "site address", "DKIM", "bounces")


def _openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


def _public_of(private: Path) -> str:
    """The key's public half as openssl writes it: base64 DER SubjectPublicKeyInfo."""
    der = _openssl("rsa", "-in", str(private), "-pubout", "-outform", "DER")
    return base64.b64encode(der).decode("ascii")


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A 2048-bit DKIM key made as docs/deploy.md makes it, and openssl's public half."""
    private = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    _openssl("genrsa", "-out", str(private), "2048")
    return private.read_bytes(), _public_of(private)


def _configure(project: Path, **values: str | int) -> None:
    """Set keys of the project's config.toml, each named section.key."""
    config = project / "config.toml"
    text = config.read_text(encoding="utf-8")
    for dotted, value in values.items():
        section, key = dotted.split("__")
        rendered = json.dumps(value)
        block = re.search(rf"(?ms)^\[{section}\]\n.*?(?=^\[|\Z)", text)
        assert block is not None, section
        changed, count = re.subn(
            rf"(?m)^{key} = .*$", f"{key} = {rendered}", block.group(0), count=1
        )
        assert count == 1, dotted
        text = text[: block.start()] + changed + text[block.end() :]
    config.write_text(text, encoding="utf-8")


def _never(raw: bytes, recipients: list[str]) -> bounces.Handled:
    raise AssertionError("doctor must not hand the bounce endpoint a message")


@pytest.fixture
def bounce_endpoint() -> Iterator[int]:
    """mailer's own bounce endpoint on 127.0.0.1, as the daemon runs it; yields its port."""
    port = free_port()
    controller = bounces.endpoint("127.0.0.1", port, DOMAIN, _never)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _line(output: str, status: str, name: str) -> str:
    found = re.search(rf"(?m)^{status}\s+{re.escape(name)}\s+(.*)$", output)
    assert found, f"no {status} line for {name} in:\n{output}"
    return found.group(1)


def test_doctor_passes_every_check_against_a_real_relay_and_prints_the_dkim_record(
    project: Path,
    rsa_key: tuple[bytes, str],
    bounce_endpoint: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A production-like set-up: a relay that answers, an https site, a DKIM key, the
    # bounce endpoint running. Every check passes, the DKIM record is openssl's public
    # key, and the relay was greeted twice (text, then JSON) without a message sent.
    private, public = rsa_key
    assert run("init").exit_code == 0
    monkeypatch.setenv("MAILER_DKIM_PRIVATE_KEY", private.decode("ascii"))
    monkeypatch.setenv("MAILER_SECRET_KEY", "k" * 64)
    with running(RecordingHandler()) as (controller, handler):
        _configure(
            project,
            smtp__transport="smtp",
            smtp__port=controller.port,
            web__base_url="https://news.lepnetwork.example",
            dkim__selector="mail2027",
            bounces__receive="smtp",
            bounces__port=bounce_endpoint,
        )
        text = run("doctor")
        as_json = run("doctor", "--json")
    assert text.exit_code == 0, text.output
    for name in CHECKS:
        _line(text.output, "PASS", name)
    assert f"127.0.0.1:{controller.port}: connected (220), EHLO" in text.output
    assert "the 2048-bit key signs" in text.output
    assert "mail2027._domainkey.lepnetwork.example  TXT" in text.output
    assert f"  v=DKIM1; k=rsa; p={public}\n" in text.output  # whole, never wrapped
    assert "v=spf1 ip4:PUBLIC-ADDRESS ~all" in text.output  # the relay is this machine
    assert "v=DMARC1; p=none; rua=mailto:info@lepnetwork.example" in text.output
    assert "a suggestion" in text.output
    assert "7 passed, 0 warnings, 0 failed" in text.output

    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["ok"] is True
    assert [(c["name"], c["status"]) for c in report["checks"]] == [(n, "pass") for n in CHECKS]
    dkim_record, spf, dmarc = report["records"]
    assert dkim_record["name"] == "mail2027._domainkey.lepnetwork.example"
    assert dkim_record["value"] == f"v=DKIM1; k=rsa; p={public}"
    assert (spf["name"], dmarc["name"]) == (DOMAIN, f"_dmarc.{DOMAIN}")
    assert handler.sessions == 2
    assert handler.messages == []


def test_doctor_with_the_relay_down_fails_with_the_fix_and_exit_1(project: Path) -> None:
    # Nothing listens on the relay's port: the relay check fails and says what to do,
    # the other checks are still shown, and the exit status is 1 (text and JSON alike).
    assert run("init").exit_code == 0
    port = free_port()
    _configure(project, smtp__transport="smtp", smtp__port=port)
    text = run("doctor")
    assert text.exit_code == 1, text.output
    assert f"nothing answers at 127.0.0.1:{port}" in _line(text.output, "FAIL", "relay")
    assert "fix: start the relay (Postfix: `systemctl status postfix`)" in text.output
    _line(text.output, "PASS", "database")
    _line(text.output, "WARN", "bounces")  # receive = "none" in the shipped file
    assert "1 failed" in text.output

    as_json = run("doctor", "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == set(CHECKS)
    assert checks["relay"]["status"] == "fail"
    assert "start the relay" in checks["relay"]["fix"]


def test_doctor_with_a_broken_configuration_fails_at_the_first_check(project: Path) -> None:
    # An invalid key: the configuration check fails naming it, and nothing else is tried.
    _configure(project, smtp__tls="sometimes")
    result = run("doctor")
    assert result.exit_code == 1
    assert "invalid settings:" in _line(result.output, "FAIL", "configuration")
    assert re.search(r"(?m)^ {21}  \[smtp\] tls: Input should be 'none'", result.output)
    assert "0 passed, 0 warnings, 1 failed" in result.output


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(key), "-out", str(cert),
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    )  # fmt: skip
    return cert, key


@pytest.fixture
def submission_relay(certificate: tuple[Path, Path]) -> Iterator[int]:
    """A relay as on port 587: STARTTLS, then AUTH (only after TLS) for mailer/right."""
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(*args: Any) -> AuthResult:
        data = args[-1]
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"mailer",
            b"right",
        )
        return AuthResult(success=ok, handled=False)  # aiosmtpd then answers 535

    port = free_port()
    controller = Controller(
        RecordingHandler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_relay_check_does_starttls_and_auth_as_configured(
    submission_relay: int, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each step is really taken, and each failure names its step and fix: a certificate
    # this machine does not trust, AUTH offered only after TLS, a wrong password, none.
    def check(password: str | None, **values: Any) -> doctor.Check:
        settings = {"transport": "smtp", "host": "127.0.0.1", "port": submission_relay}
        smtp = SmtpSettings(**{**settings, "timeout": 10.0, **values})
        return asyncio.run(doctor.check_relay(smtp, password))

    untrusted = check("right", tls="starttls", username="mailer")
    assert untrusted.status is Status.FAIL
    assert "certificate is not trusted" in untrusted.summary
    assert "public CA" in untrusted.fix

    plain = check("right", tls="none", username="mailer")
    assert plain.status is Status.FAIL
    assert "offers no AUTH on an unencrypted connection" in plain.summary
    assert 'tls = "starttls"' in plain.fix

    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # now this machine trusts it
    good = check("right", tls="starttls", username="mailer")
    assert good.status is Status.PASS, good
    assert good.summary == (
        f"127.0.0.1:{submission_relay}: connected (220), EHLO, STARTTLS, AUTH as mailer"
    )
    wrong = check("wrong", tls="starttls", username="mailer")
    assert wrong.status is Status.FAIL
    assert "refused the login of 'mailer': 535" in wrong.summary
    assert "MAILER_SMTP_PASSWORD" in wrong.fix
    missing = check(None, tls="starttls", username="mailer")
    assert missing.status is Status.FAIL
    assert "MAILER_SMTP_PASSWORD is not set" in missing.summary
    no_login = check(None, tls="starttls")
    assert no_login.status is Status.PASS
    assert no_login.summary.endswith("EHLO, STARTTLS")


def test_relay_check_with_implicit_tls(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 465 style: TLS from the first byte. An untrusted certificate is named as such
    # (not as a relay that does not answer), and a client without TLS is told the port.
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controller = Controller(
        RecordingHandler(), hostname="127.0.0.1", port=free_port(), ssl_context=context
    )
    controller.start()
    try:
        smtp = SmtpSettings(
            transport="smtp", host="127.0.0.1", port=controller.port, tls="implicit", timeout=5.0
        )
        untrusted = asyncio.run(doctor.check_relay(smtp, None))
        assert untrusted.status is Status.FAIL
        assert "certificate is not trusted" in untrusted.summary
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        trusted = asyncio.run(doctor.check_relay(smtp, None))
        assert trusted.status is Status.PASS, trusted
        assert "connected (220 over TLS), EHLO" in trusted.summary
        plain = SmtpSettings(transport="smtp", host="127.0.0.1", port=controller.port, timeout=1.0)
        wrong = asyncio.run(doctor.check_relay(plain, None))
        assert wrong.status is Status.FAIL
        assert '"implicit" for port 465' in wrong.fix
    finally:
        controller.stop()


def test_relay_check_warns_for_capture_and_passes_a_relay_on_this_machine() -> None:
    capture = asyncio.run(doctor.check_relay(SmtpSettings(), None))
    assert capture.status is Status.WARN
    assert 'transport = "smtp"' in capture.fix
    with running() as (controller, _):
        smtp = SmtpSettings(transport="smtp", host="127.0.0.1", port=controller.port)
        assert asyncio.run(doctor.check_relay(smtp, None)).status is Status.PASS


def test_dkim_record_is_the_public_half_of_the_private_key(
    rsa_key: tuple[bytes, str], tmp_path: Path
) -> None:
    # The record derived from the key is openssl's public key, for a PKCS#8 key (what
    # openssl 3 writes) and for the same key as PKCS#1; a message signed as the sender
    # signs verifies against the record; weak, missing and broken keys are named.
    private, public = rsa_key
    pkcs8 = tmp_path / "pkcs8.pem"
    pkcs8.write_bytes(private)
    pkcs1 = _openssl("rsa", "-in", str(pkcs8), "-traditional")
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert private.startswith(b"-----BEGIN PRIVATE KEY-----")
    for pem in (private, pkcs1):
        assert doctor.rsa_public_key(pem) == (public, 2048)
        check, record = doctor.check_dkim("mail2027", DOMAIN, pem)
        assert check.status is Status.PASS, check
        assert record is not None
        assert record.name == "mail2027._domainkey.lepnetwork.example"
        assert record.value == f"v=DKIM1; k=rsa; p={public}"
        published = record
    signed = messages.dkim_sign(
        b"From: a@lepnetwork.example\r\nSubject: s\r\n\r\nbody\r\n",
        selector="mail2027",
        domain=DOMAIN,
        private_key=private,
    )

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2027._domainkey.lepnetwork.example."
        return published.value.encode("ascii")

    assert dkim.verify(signed, dnsfunc=lookup)
    # Zone files hold strings of at most 255 characters.
    strings = re.findall(r'"([^"]*)"', published.zone_line)
    assert "".join(strings) == published.value
    assert all(len(part) <= 255 for part in strings) and len(strings) == 2

    weak = tmp_path / "weak.pem"
    _openssl("genrsa", "-out", str(weak), "1024")
    check, record = doctor.check_dkim("mail2027", DOMAIN, weak.read_bytes())
    assert check.status is Status.WARN
    assert "1024 bits is weak" in check.summary
    assert record is not None and record.value.endswith(_public_of(weak))

    check, record = doctor.check_dkim("mail2027", DOMAIN, b"not a key")
    assert (check.status, record) == (Status.FAIL, None)
    assert "does not load" in check.summary
    check, _ = doctor.check_dkim("mail2027", DOMAIN, None)
    assert check.status is Status.FAIL
    assert "no private key is set" in check.summary
    check, _ = doctor.check_dkim("", DOMAIN, None)
    assert check.status is Status.WARN


def test_spf_and_dmarc_suggestions_name_the_relay_and_the_contact_address() -> None:
    assert doctor.spf_record(DOMAIN, "81.2.69.160").value == "v=spf1 ip4:81.2.69.160 ~all"
    assert doctor.spf_record(DOMAIN, "2a00:1450:4009::1b").value == (
        "v=spf1 ip6:2a00:1450:4009::1b ~all"
    )
    by_name = doctor.spf_record(DOMAIN, "smtp.relay.example")
    assert by_name.value == "v=spf1 a:smtp.relay.example ~all"
    assert "include:" in by_name.note
    local = doctor.spf_record(DOMAIN, "127.0.0.1")
    assert local.value == "v=spf1 ip4:PUBLIC-ADDRESS ~all"
    for record in (by_name, local):
        assert record.name == DOMAIN
        assert record.note.startswith("a suggestion")
    own = doctor.dmarc_record(DOMAIN, "info@lepnetwork.example")
    assert own.name == "_dmarc.lepnetwork.example"
    assert own.value == "v=DMARC1; p=none; rua=mailto:info@lepnetwork.example"
    assert "_report._dmarc" not in own.note
    elsewhere = doctor.dmarc_record(DOMAIN, "reports@dmarc.example")
    assert "lepnetwork.example._report._dmarc.dmarc.example" in elsewhere.note


def test_site_address_check_wants_a_public_https_address() -> None:
    assert doctor.check_base_url(WebSettings()).status is Status.WARN
    plain = doctor.check_base_url(WebSettings(base_url="http://news.lepnetwork.example"))
    assert plain.status is Status.WARN
    assert "not encrypted" in plain.summary
    good = doctor.check_base_url(WebSettings(base_url="https://news.lepnetwork.example/"))
    assert good.status is Status.PASS


def test_database_check_names_the_command_that_fixes_the_schema(db_url: str) -> None:
    # Empty, current, one migration behind, unreachable: each says what to run.
    empty = doctor.check_database(db_url)
    assert empty.status is Status.FAIL
    assert "mailer init" in empty.fix
    if db_url.startswith("sqlite"):
        assert not Path(sa.make_url(db_url).database or "").exists()  # not created by it
    engine = db.create_engine(db_url)
    try:
        db.init_schema(engine)
        current = doctor.check_database(db_url)
        assert current.status is Status.PASS, current
        assert db.head_revision() in current.summary
        db.downgrade(engine, "-1")
        behind = doctor.check_database(db_url)
        assert behind.status is Status.FAIL
        assert "mailer db upgrade" in behind.fix
    finally:
        engine.dispose()
    gone = doctor.check_database(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    assert gone.status is Status.FAIL
    assert "cannot use postgresql" in gone.summary


def test_bounce_endpoint_check_greets_mailers_endpoint_and_nothing_else(
    bounce_endpoint: int,
) -> None:
    ours = asyncio.run(doctor.check_bounce_endpoint("127.0.0.1", bounce_endpoint, DOMAIN))
    assert ours.status is Status.PASS, ours
    other = asyncio.run(doctor.check_bounce_endpoint("127.0.0.1", bounce_endpoint, "x.example"))
    assert other.status is Status.FAIL
    assert "refuses bounces@x.example: 550" in other.summary
    down = asyncio.run(doctor.check_bounce_endpoint("127.0.0.1", free_port(), DOMAIN))
    assert down.status is Status.FAIL
    assert "mailer daemon" in down.fix
    none = asyncio.run(doctor.check_bounces(BounceSettings(), DOMAIN, None))
    assert none.status is Status.WARN


@pytest.mark.skipif(imap_server.unavailable() is not None, reason=str(imap_server.unavailable()))
def test_bounce_mailbox_check_logs_in_to_a_real_imap_server() -> None:
    with imap_server.dovecot() as mailbox:
        settings = BounceSettings(
            receive="imap",
            imap_host=mailbox.host,
            imap_port=mailbox.port,
            imap_tls=False,
            imap_username=mailbox.username,
        )
        good = asyncio.run(doctor.check_bounces(settings, DOMAIN, mailbox.password))
        assert good.status is Status.PASS, good
        assert "INBOX holds 0 messages" in good.summary
        wrong = doctor.check_bounce_mailbox(settings, "wrong")
        assert wrong.status is Status.FAIL
        assert "refused the login" in wrong.summary
    assert doctor.check_bounce_mailbox(settings, None).status is Status.FAIL


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {
            table: sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backup_of_sqlite_is_a_consistent_copy_while_a_writer_works(
    project: Path, db_url: str, tmp_path: Path
) -> None:
    # A writer holds an open transaction (as a sender does mid-batch) while the backup
    # runs: the backup neither waits for it nor holds its uncommitted rows, and has every
    # table and row of the database. It is one file, readable by its owner only.
    assert run("init").exit_code == 0
    source = Path(sa.make_url(db_url).database or "")
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE organisations SET name = name || ' (changing)'")
    target = tmp_path / "backups" / "mailer.db"
    try:
        result = run("backup", str(target))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 0, result.output
    assert "Backed up" in result.output and "tables" in result.output
    copy = _rows(target)
    assert copy == _rows(source)
    assert len(copy["organisations"]) == 55
    assert not any("(changing)" in str(row) for row in copy["organisations"])
    with sqlite3.connect(target) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["mailer.db"]

    again = run("backup", str(target))
    assert again.exit_code == 2
    assert "exists: give --force to replace it" in again.output
    assert run("backup", str(target), "--force").exit_code == 0
    assert run("backup", str(target.parent)).exit_code == 2


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_backup_on_postgresql_prints_the_pg_dump_command_and_exits_1(
    project: Path, tmp_path: Path
) -> None:
    target = tmp_path / "mailer.dump"
    result = run("backup", str(target))
    assert result.exit_code == 1
    assert "pg_dump --format=custom --file=" in result.output
    assert not target.exists()


def test_pg_dump_command_leaves_the_password_out() -> None:
    command = db.pg_dump_command(
        "postgresql+psycopg://mailer:secret@db.example:5432/mailer", Path("/b/m.dump")
    )
    assert command == (
        "pg_dump --format=custom --file=/b/m.dump postgresql://mailer@db.example:5432/mailer"
    )


# -- docs/deploy ----------------------------------------------------------------------------


def _units() -> list[Path]:
    return sorted([*DEPLOY.glob("*.service"), *DEPLOY.glob("*.timer")])


def _parse_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(
        strict=False, comment_prefixes=("#", ";"), delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def _mailer_commands(exec_start: str) -> list[list[str]]:
    """The `mailer` command lines in an ExecStart= value (also inside `sh -c '...'`)."""
    argv = shlex.split(exec_start.replace("%%", "%"))
    if len(argv) >= 3 and argv[0] == "/bin/sh" and argv[1] == "-c":
        argv = shlex.split(argv[2])
        if argv[0] == "exec":
            argv = argv[1:]
    return [argv[1:]] if argv and argv[0].endswith("/mailer") else []


def test_unit_files_parse_and_every_mailer_command_in_them_exists(tmp_path: Path) -> None:
    units = _units()
    names = {unit.name for unit in units}
    assert {"mailer-serve.service", "mailer-daemon.service", "mailer-web.service"} <= names
    assert {"mailer-worker@.service", "mailer-backup.service", "mailer-backup.timer"} <= names
    commands = []
    for unit in units:
        parsed = _parse_unit(unit)
        assert parsed.has_option("Unit", "Description"), unit
        if unit.suffix == ".service":
            assert parsed.has_section("Service"), unit
            exec_start = parsed.get("Service", "ExecStart")
            found = _mailer_commands(exec_start)
            assert found, f"{unit.name}: no mailer command in {exec_start!r}"
            assert MAILER_BIN in exec_start
            commands += found
        else:
            assert parsed.has_option("Timer", "OnCalendar")
        if unit.name != "mailer-backup.service":  # started by its timer, not enabled
            assert parsed.get("Install", "WantedBy") in ("multi-user.target", "timers.target")
    assert ["serve", "--no-daemon"] in commands and ["daemon"] in commands
    assert ["worker"] in commands and ["serve"] in commands
    for args in commands:
        # Every option is parsed before --help is acted on: an unknown one is an error.
        result = run(*args, "--help")
        assert result.exit_code == 0, (args, result.output)
        assert "Example:" in result.output

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    # systemd's own parser, on copies whose ExecStart names this checkout's mailer (it
    # checks that the program exists).
    executable = Path(sys.executable).with_name("mailer")
    assert executable.exists(), executable
    for unit in units:
        text = unit.read_text(encoding="utf-8").replace(MAILER_BIN, str(executable))
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    verified = subprocess.run(
        [analyze, "verify", *(str(tmp_path / unit.name) for unit in units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours = [line for line in verified.stderr.splitlines() if str(tmp_path) in line]
    assert verified.returncode == 0 and not ours, verified.stderr


def test_nginx_postfix_and_wrapper_match_the_shipped_settings(tmp_path: Path) -> None:
    # The proxy passes to [web] host:port and replaces X-Forwarded-For; the transport table
    # routes the addresses the bounce endpoint takes to [bounces] host:port; Postfix knows
    # every parameter set; the wrapper is valid sh.
    from mailer import settings

    shipped = settings.load(ROOT / "config.toml", environ={}).settings
    nginx = (DEPLOY / "nginx-mailer.conf").read_text(encoding="utf-8")
    assert f"proxy_pass http://{shipped.web.host}:{shipped.web.port};" in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert 'trusted_proxies = ["127.0.0.1"]' in nginx
    transport = [
        line.split()
        for line in (DEPLOY / "postfix-transport").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    hop = f"smtp:[{shipped.bounces.host}]:{shipped.bounces.port}"
    assert sorted(address for address, _ in transport) == sorted(
        f"{local}@{shipped.network.domain}" for local in ("bounces", "abuse", "fbl", "unsubscribe")
    )
    assert {next_hop for _, next_hop in transport} == {hop}
    main_cf = (DEPLOY / "postfix-main.cf").read_text(encoding="utf-8")
    assert "recipient_delimiter = +" in main_cf
    assert not re.search(r"(?m)^[a-z_]+ = .*#", main_cf)  # no comment after a value
    postconf = Path("/usr/sbin/postconf")
    if postconf.exists():
        (tmp_path / "main.cf").write_text(main_cf, encoding="utf-8")
        master = Path("/etc/postfix/master.cf")
        if master.exists():
            shutil.copy(master, tmp_path / "master.cf")
        checked = subprocess.run(
            [str(postconf), "-c", str(tmp_path), "-n"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert "unused parameter" not in checked.stderr, checked.stderr
    subprocess.run(["sh", "-n", str(DEPLOY / "mailer.sh")], check=True, timeout=30)


def test_deploy_doc_holds_every_file_as_it_is() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for path in sorted(DEPLOY.iterdir()):
        assert f"`docs/deploy/{path.name}`:" in doc, path.name
        assert path.read_text(encoding="utf-8") in doc, f"{path.name} differs in the doc"
    for command in ("mailer db upgrade", "mailer backup", "pg_dump", "pg_restore"):
        assert command in doc
    assert run("db", "upgrade", "--help").exit_code == 0
