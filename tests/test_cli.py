"""The command line, used as a new user would: set up, import (bad files too), list, export."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from mailer.cli import app
from tests.helpers import cli, write_csv

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _commands() -> Iterator[tuple[str, ...]]:
    root = get_command(app)

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        names = command.list_commands(context) if hasattr(command, "list_commands") else []
        for name in names:
            yield from walk(command.get_command(context, name), (*path, name))
        if not names:
            yield path

    with root.context_class(root) as context:  # the root's commands load when asked for
        yield from walk(root, ())


def test_every_command_has_help_with_an_example() -> None:
    commands = list(_commands())
    assert ("contacts", "import") in commands and ("audience", "show") in commands
    for path in commands:
        result = run(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Example:" in result.output, f"`mailer {' '.join(path)} --help` has no example"


LOADS = """
import sys
from mailer.cli import app
try:
    app(sys.argv[1:])
except SystemExit as stop:
    assert not stop.code, stop.code
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    ("args", "unwanted"),
    [
        (["contacts", "import", "--help"], ("fastapi", "premailer", "jinja2", "mailer.web")),
        (["orgs", "list", "--help"], ("fastapi", "premailer", "mailer.rendering", "PIL")),
        (["audit", "--help"], ("uvicorn", "apscheduler", "mailer.daemon")),
    ],
)
def test_a_command_loads_only_what_it_uses(args: list[str], unwanted: tuple[str, ...]) -> None:
    """`mailer contacts import` starts without the web site or the renderer: the commands
    load when used (start-up time and memory), while `mailer --help` still lists them all."""
    done = subprocess.run(
        [sys.executable, "-c", LOADS, *args], capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert f"mailer.cli.{'privacy' if args[0] == 'audit' else args[0]}" in loaded
    assert not [name for name in unwanted if name in loaded], done.stdout
    listed = run("--help")
    for command in ("contacts", "serve", "daemon", "report", "subject"):
        assert command in listed.output


def test_an_error_of_a_lazily_loaded_command_is_one_clear_line(project: Path) -> None:
    """The clean-error rule covers the modules imported only when their command runs."""
    assert run("init").exit_code == 0
    result = cli(project, "contacts", "import", str(project / "missing.csv"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"error: {project / 'missing.csv'}: no such file" in " ".join(result.stderr.split())


def test_init_loads_everything_and_is_harmless_to_repeat(project: Path) -> None:
    first = run("init", "--demo")
    assert first.exit_code == 0, first.output
    assert "Database created" in first.output
    assert "Organisations: 55 added" in first.output
    assert "275 added" in first.output
    second = run("init", "--demo")
    assert second.exit_code == 0, second.output
    assert "already up to date" in second.output
    assert "0 added, 0 updated, 55 unchanged" in second.output
    assert "0 added, 0 updated, 275 unchanged" in second.output


def test_commands_before_init_say_what_to_do(project: Path) -> None:
    result = run("contacts", "list")
    assert result.exit_code == 2
    assert "run `mailer init` first" in result.output


def test_a_bad_file_is_reported_row_by_row_and_exits_zero(project: Path, tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    path = write_csv(
        tmp_path / "mixed.csv",
        "email,name,organisation,role\n"
        "ann@d2n2.example,Ann Lee,D2N2,chair\n"
        "nobody@,No One,D2N2,chair\n"
        "bo@x.example,Bo,Atlantis,chair\n",
    )
    report = tmp_path / "problems.csv"
    result = run("contacts", "import", str(path), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "2 rejected" in result.output
    assert "invalid address 'nobody@'" in result.output
    assert "unknown organisation 'Atlantis'" in result.output
    with report.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["line"], r["outcome"], r["field"]) for r in rows] == [
        ("3", "rejected", "email"),
        ("4", "rejected", "organisation"),
    ]


def test_a_dry_run_says_so_and_writes_nothing(project: Path, tmp_path: Path) -> None:
    # A dry run succeeds, reports what it would do, and leaves the database empty.
    assert run("init").exit_code == 0
    path = write_csv(
        tmp_path / "c.csv", "email,name,organisation,role\nann@d2n2.example,Ann,D2N2,chair\n"
    )
    result = run("contacts", "import", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1 would be added" in result.output
    assert "Dry run: nothing was written" in result.output
    assert "0 of 0 contacts shown" in run("contacts", "list").output


def test_an_unreadable_file_exits_non_zero(project: Path, tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    result = run("contacts", "import", str(tmp_path / "absent.csv"))
    assert result.exit_code == 2
    assert "absent.csv: no such file" in result.output
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    result = run("contacts", "import", str(binary))
    assert result.exit_code == 2
    assert "NUL byte" in result.output


def test_list_export_orgs_and_audience(project: Path, tmp_path: Path) -> None:
    assert run("init", "--demo").exit_code == 0
    listed = run("contacts", "list", "--org", "D2N2", "--role", "chair")
    assert listed.exit_code == 0, listed.output
    assert "@d2n2.demo.example" in listed.output
    assert "1 of 1 contacts shown" in listed.output
    assert "unknown role" in run("contacts", "list", "--role", "janitor").output
    out = tmp_path / "export.csv"
    exported = run("contacts", "export", str(out))
    assert exported.exit_code == 0, exported.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 275
    assert {"email", "name", "organisation", "role", "status"} <= set(rows[0])
    assert run("contacts", "export").output.startswith("email,name,organisation,role,status")
    orgs = run("orgs", "list")
    assert "55 organisations (38 LEPs)" in orgs.output
    bulletin = run("audience", "show", "bulletin")
    assert bulletin.exit_code == 0, bulletin.output
    assert "government" not in bulletin.output
    newsletter = run("audience", "show", "newsletter")
    assert "government" in newsletter.output
    assert "275 recipients" in newsletter.output


def test_orgs_add_takes_external_kinds_only(project: Path) -> None:
    assert run("init").exit_code == 0
    added = run("orgs", "add", "Local Radio Ltd", "--kind", "media", "--short-name", "LRL")
    assert added.exit_code == 0, added.output
    assert "Local Radio Ltd" in run("orgs", "list", "--kind", "media").output
    refused = run("orgs", "add", "Fake LEP", "--kind", "lep")
    assert refused.exit_code == 2 and "lists/leps.csv" in refused.output
    again = run("orgs", "add", "local radio ltd", "--kind", "media")
    assert again.exit_code == 2 and "already exists" in again.output
    # The short name of a LEP cannot become the name of a government body.
    clash = run("orgs", "add", "D2N2", "--kind", "government")
    assert clash.exit_code == 2, clash.output
    assert "'D2N2' already exists as the name or short name of 'Derby" in clash.output
    assert "D2N2" not in run("orgs", "list", "--kind", "government").output


def test_configuration_errors_name_the_key(project: Path) -> None:
    config = project / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("echo = false", "echo = 1"))
    result = run("init")
    assert result.exit_code == 2
    assert "[database] echo" in result.output and "valid boolean" in result.output


def test_a_missing_configuration_says_how_to_find_one(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILER_CONFIG", str(project / "nowhere.toml"))
    result = run("init")
    assert result.exit_code == 2
    assert "nowhere.toml: no such configuration file" in result.output


def test_config_shows_settings_without_secrets(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILER_SMTP_PASSWORD", "hunter2")
    result = run("config")
    assert result.exit_code == 0, result.output
    assert "network.domain" in result.output
    assert "MAILER_SMTP_PASSWORD: set" in result.output
    assert "hunter2" not in result.output


def test_the_installed_command_runs_in_a_fresh_folder(project: Path) -> None:
    # The real console script in a real process, from the project folder, as the README says.
    env = {k: v for k, v in os.environ.items() if k != "MAILER_CONFIG"}
    bin_dir = Path(sys.executable).parent
    mailer = bin_dir / "mailer"
    command = [str(mailer)] if mailer.exists() else [sys.executable, "-m", "mailer"]
    done = subprocess.run(
        [*command, "init", "--demo"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "275 added" in done.stdout
    shown = subprocess.run(
        [*command, "audience", "show", "bulletin"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("organisation kind\trole\tcontacts\n")  # piped: rows
    assert "recipients" in shown.stderr  # the total is a remark, not a row


def _clean_error(result: Result, text: str) -> None:
    """Exit status 2, the message shown, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert text in result.output, result.output


def test_unwritable_paths_and_bad_values_are_clean_errors(project: Path, tmp_path: Path) -> None:
    # Mistakes at the terminal get one line and exit status 2, never a traceback; a report
    # path that cannot be written stops the import before anything is written.
    assert run("init", "--demo").exit_code == 0
    _clean_error(run("contacts", "export", "/no/dir/x.csv"), "/no/dir/x.csv: cannot write")
    path = write_csv(
        tmp_path / "c.csv", "email,name,organisation,role\nnew@d2n2.example,New,D2N2,chair\n"
    )
    refused = run("contacts", "import", str(path), "--report", "/no/dir/r.csv")
    _clean_error(refused, "--report /no/dir/r.csv: cannot write")
    assert "0 of 0 contacts shown" in run("contacts", "list", "--search", "new@").output
    _clean_error(run("contacts", "list", "--limit", "-1"), "--limit")
    _clean_error(run("orgs", "add", "x" * 201, "--kind", "media"), "name: longer than 200")
    _clean_error(
        run("orgs", "add", "Short Ltd", "--kind", "media", "--short-name", "s" * 61),
        "short_name: longer than 60",
    )
    _clean_error(run("db", "upgrade", "nonsense"), "Can't locate revision identified by")
    _clean_error(
        run("contacts", "import", str(path), "--source", "s" * 201), "--source: longer than 200"
    )


def test_a_database_folder_that_cannot_be_made_is_a_clean_error(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file stands where the SQLite database's folder should be.
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("MAILER_DATABASE_URL", f"sqlite:///{blocker}/var/mailer.db")
    _clean_error(run("init"), "cannot create the folder")


def test_db_revision_is_for_developers_only(project: Path) -> None:
    # Hidden from help (it writes into the package); its own --help still explains it.
    listed = run("db", "--help").output
    assert re.search(r"^\W+upgrade\s", listed, re.MULTILINE), listed
    assert not re.search(r"^\W+revision\s", listed, re.MULTILINE), listed
    own = run("db", "revision", "--help")
    assert own.exit_code == 0 and "git checkout" in own.output


def test_a_report_and_warnings_are_safe_to_open(project: Path, tmp_path: Path) -> None:
    # A rejected address that looks like a formula is written to the report with a leading
    # ', and a file that is not all UTF-8 is warned about with the line that broke it.
    assert run("init").exit_code == 0
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        b"email,name,organisation,role\r\n"
        b'"=HYPERLINK(""http://x"")",Bad,D2N2,chair\r\n'
        b"zoe@d2n2.example,Zo\xeb,D2N2,chair\r\n"
    )
    report = tmp_path / "report.csv"
    result = run("contacts", "import", str(path), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "warning: line 3 is not UTF-8; the file was read as Windows-1252" in result.output
    with report.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["line"], r["email"]) for r in rows] == [("2", '\'=HYPERLINK("http://x")')]
    assert "Zoë" in run("contacts", "list").output


def test_events_add_refuses_a_duplicate_and_a_plain_http_link(project: Path) -> None:
    assert run("init").exit_code == 0
    added = run(
        "events", "add", "2027-03-10", "LEP Network conference", "--link", "https://c.example"
    )
    assert added.exit_code == 0, added.output
    twice = run("events", "add", "2027-03-10", "LEP network conference")
    assert twice.exit_code == 2
    assert "title: 'LEP Network conference' on 2027-03-10 is already in the diary" in twice.output
    plain = run("events", "add", "2027-03-11", "Skills fair", "--link", "http://fair.example")
    assert plain.exit_code == 2
    assert "link: expected an https address, got 'http://fair.example'" in plain.output
    assert "Skills fair" not in run("events", "list", "--all").output


def test_staff_commands_keep_the_last_admin(project: Path) -> None:
    assert run("init").exit_code == 0
    assert run("staff", "add", "boss@lepnetwork.example", "--role", "admin").exit_code == 0
    for command in (
        ("role", "boss@lepnetwork.example", "editor"),
        ("disable", "boss@lepnetwork.example"),
    ):
        refused = run("staff", *command)
        assert refused.exit_code == 2
        assert "boss@lepnetwork.example is the last admin" in refused.output
    assert run("staff", "add", "deputy@lepnetwork.example", "--role", "admin").exit_code == 0
    assert run("staff", "disable", "boss@lepnetwork.example").exit_code == 0
    last = run("staff", "role", "deputy@lepnetwork.example", "approver")
    assert last.exit_code == 2 and "deputy@lepnetwork.example is the last admin" in last.output


def test_a_mistyped_command_gets_a_suggestion_without_loading_every_command() -> None:
    result = run("contact", "list")
    assert result.exit_code == 2
    assert "Did you mean 'contacts'?" in result.output
    assert "No such command 'zzz'." in run("zzz").output
    assert "Did you mean 'report'" in run("issue", "reprot").output
