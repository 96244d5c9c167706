"""``mailer doctor``: check an installation part by part and show what to fix."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from mailer import doctor, settings
from mailer.cli.state import console

_STYLE = {
    doctor.Status.PASS: "[bold green]PASS[/]",
    doctor.Status.WARN: "[bold yellow]WARN[/]",
    doctor.Status.FAIL: "[bold red]FAIL[/]",
}


def doctor_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Write the checks and records as JSON.")
    ] = False,
) -> None:
    """Check the installation: configuration, database, relay, site address, DKIM, bounces.

    Each check is tried for real (the relay and the bounce endpoint are greeted, nothing
    is sent; nothing is changed) and says pass, warn or fail, with the fix. Then the DNS
    records the mail domain should publish: the DKIM key record, derived from the private
    key, and suggested SPF and DMARC records. Exits with status 1 when any check fails.

    Example: MAILER_CONFIG=/etc/mailer/config.toml mailer doctor
    """
    report = doctor.examine(settings.config_path(), os.environ)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        _show(report)
    if report.failed:
        raise typer.Exit(1)


def _show(report: doctor.Report) -> None:
    width = max(len(check.name) for check in report.checks)
    indent = " " * (width + 8)
    for check in report.checks:
        summary = escape(check.summary).replace("\n", "\n" + indent)
        console.print(
            f"{_STYLE[check.status]}  {escape(check.name.ljust(width))}  {summary}",
            soft_wrap=True,
        )
        if check.fix:
            console.print(f"{indent}fix: {escape(check.fix)}", soft_wrap=True)
    if report.records:
        console.print()
        console.print(
            "[bold]DNS records to publish[/] (check what is published: dig +short TXT NAME)"
        )
        for record in report.records:
            console.print(f"{escape(record.name)}  {record.kind}", soft_wrap=True)
            console.print(f"  {escape(record.value)}", soft_wrap=True)
            console.print(f"  zone file: {escape(record.zone_line)}", soft_wrap=True)
            console.print(f"  [dim]{escape(record.note)}[/]", soft_wrap=True)
    counts = {status: 0 for status in doctor.Status}
    for check in report.checks:
        counts[check.status] += 1
    console.print()
    console.print(
        f"{counts[doctor.Status.PASS]} passed, {counts[doctor.Status.WARN]} warnings, "
        f"{counts[doctor.Status.FAIL]} failed"
    )
