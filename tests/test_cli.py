"""The command line, used as a new user would: set up, import (bad files too), list, export."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner, Result

from mailer.cli import app
from tests.helpers import write_csv

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def _commands() -> Iterator[tuple[str, ...]]:
    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path

    yield from walk(get_command(app), ())


def test_every_command_has_help_with_an_example() -> None:
    commands = list(_commands())
    assert ("contacts", "import") in commands and ("audience", "show") in commands
    for path in commands:
        result = run(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Example:" in result.output, f"`mailer {' '.join(path)} --help` has no example"


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
    assert run("init").exit_code == 0
    path = write_csv(
        tmp_path / "c.csv", "email,name,organisation,role\nann@d2n2.example,Ann,D2N2,chair\n"
    )
    result = run("contacts", "import", str(path), "--dry-run")
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
    assert "recipients" in shown.stdout
