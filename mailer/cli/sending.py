"""``mailer send``, ``mailer worker`` and ``mailer issue report``: the outbox at work."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer
import uvloop
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

from mailer import audiences, delivery, issues, messages, outbox, publications, reports, tokens
from mailer.cli import contributions
from mailer.cli import issues as issues_cli
from mailer.cli.issues import issue_json
from mailer.cli.output import AsJson, print_document, table, warn
from mailer.cli.state import State, console, err, fail, state
from mailer.models import DeliveryStatus, Issue, IssueStatus
from mailer.transports import from_config


def _sender(current: State) -> delivery.Sender:
    config = current.config
    return delivery.Sender(
        current.engine,
        config,
        from_config(config, current.engine),
        signer=tokens.TokenSigner(tokens.load_key(config.secrets.secret_key, config.var_dir)),
        dkim=messages.dkim_key(config),
    )


async def _run(sender: delivery.Sender, **kwargs: object) -> delivery.Tally:
    """Run the sender; the first Ctrl-C stops it cleanly, a second one stops it at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            err.print("Stopping: finishing messages in flight (Ctrl-C again to stop at once)")
            sender.stop()
        elif task is not None:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGTERM, sender.stop)
    try:
        return await sender.run(**kwargs)  # type: ignore[arg-type]
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


def send_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="The approved issue to send.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Send an approved issue to its audience now, with a progress bar.

    The audience is snapshot into the outbox (one delivery per contact); deliveries are
    claimed, sent through the configured transport and recorded one by one. Ctrl-C stops
    cleanly and a later `mailer send` resumes. Deferred deliveries are retried later by
    `mailer worker`.

    Example: mailer send 3
    """
    current = state(ctx)
    config = current.config
    with current.session() as session:
        issue = issues.get(session, issue_id)
        if issue.status in outbox.SENDABLE:
            rule = publications.load(config.lists_dir, issue.publication).audience
            if not yes and sys.stdin.isatty():
                size = audiences.count(session, issue.publication, rule)
                typer.confirm(
                    f"Send {issue.publication} {issue.number} to {size:,} recipients now?",
                    abort=True,
                )
            queued = outbox.enqueue(session, issue, rule)
            current.audit(session, "issue:send", f"issue {issue_id}", f"{queued} recipients")
            console.print(f"Queued {queued:,} deliveries for {issue.publication} {issue.number}")
        elif issue.status is IssueStatus.SENDING:
            console.print(f"Resuming {issue.publication} {issue.number}")
        else:
            fail(f"issue {issue_id} is {issue.status}: only an approved issue can be sent")
    sender = _sender(current)
    with (
        delivery.single_sender(current.engine, config.var_dir),
        Progress(
            TextColumn("[bold]Sending[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "sent {task.fields[sent]:,}  deferred {task.fields[deferred]:,}  "
                "failed {task.fields[failed]:,}  {task.fields[rate]:,.0f}/s"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress,
    ):
        bar = progress.add_task("send", total=None, sent=0, deferred=0, failed=0, rate=0.0)

        def show(tally: delivery.Tally) -> None:
            progress.update(
                bar,
                total=tally.to_send or None,
                completed=tally.done,
                sent=tally.sent,
                deferred=tally.deferred,
                failed=tally.failed,
                rate=tally.rate,
            )

        tally = uvloop.run(_run(sender, issue_id=issue_id, drain=True, on_progress=show))
    _summary(current, issue_id, tally)
    told = contributions.tell(current)
    if told:
        console.print(f"{told} contributors were told their items are in it")


def _summary(current: State, issue_id: int, tally: delivery.Tally) -> None:
    with current.session() as session:
        report = outbox.report(session, issue_id)
        issue = issues.get(session, issue_id)
    console.print(
        f"{issue.publication} {issue.number}: {tally.sent:,} sent, {tally.deferred:,} deferred, "
        f"{tally.failed:,} failed this run; issue is {issue.status}"
    )
    if tally.resent_in_doubt:
        console.print(f"{tally.resent_in_doubt:,} deliveries from an interrupted run were in doubt")
    if tally.taken_over:
        console.print(
            f"{tally.taken_over:,} deliveries were taken over by another sender while this one "
            "was held up, and left to it unsent"
        )
    left = report.counts.get(DeliveryStatus.DEFERRED, 0) + report.counts.get(
        DeliveryStatus.QUEUED, 0
    )
    if left:
        console.print(f"{left:,} deliveries wait for a retry: `mailer worker` sends them when due")
    console.print(f"Details: mailer issue report {issue_id}")


def worker_command(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Stop when nothing is due instead of waiting.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between looks at an empty outbox.")] = 5.0,
) -> None:
    """Drain the outbox of every issue that is sending, retrying deferred deliveries when due.

    On PostgreSQL several workers can share the work; on SQLite one runs at a time. With
    [ops] listen it answers /healthz, /readyz and /metrics.

    Example: mailer worker --once
    """
    current = state(ctx)
    sender = _sender(current)
    from mailer.web import ops  # here: the web stack is slow to import

    probe = ops.listener(ops.Probe(current.config, current.engine, lambda: None))

    async def work() -> delivery.Tally:
        serving = asyncio.create_task(probe.serve()) if probe else None
        try:
            return await _run(sender, drain=once, poll=poll)
        finally:
            if probe is not None and serving is not None:
                probe.should_exit = True
                await serving

    with delivery.single_sender(current.engine, current.config.var_dir):
        err.print(f"Worker {sender.worker} started (Ctrl-C to stop)")
        tally = uvloop.run(work())
    console.print(
        f"Worker stopped: {tally.sent:,} sent, {tally.deferred:,} deferred, {tally.failed:,} failed"
    )


def report_command(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(help="Issue id.")],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="One table per organisation (every LEP, and each other organisation it went "
            "to) or per kind of organisation: reach, clicks and view-online opens.",
            metavar="organisation|kind",
        ),
    ] = None,
    as_json: AsJson = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print the --by table as CSV (organisation if no --by).")
    ] = False,
) -> None:
    """Show a send's figures: deliveries per status, in doubt, duration, rate, failures,
    and its reach and what was read.

    Reach: delivered (accepted and not bounced later), deferred, failed, suppressed, in
    doubt, bounced (5xx replies and later DSNs), unsubscribed and complained after this
    issue, per LEP, per other organisation and kind, and in total; LEPs nobody was reached
    at are named. Clicks and view-online opens are counted per organisation and day, never
    per person; an organisation with fewer than [reports] min_group recipients is added to
    "other".

    Example:

      mailer issue report 3

      mailer issue report 3 --by organisation

      mailer issue report 3 --by kind --csv > kinds.csv

      mailer issue report 3 --json
    """
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    if by is not None and by not in reports.BY:
        fail(f"--by: choose organisation or kind, not {by!r}")
    current = state(ctx)
    min_group = current.config.settings.reports.min_group
    with current.session() as session:
        issue = issues.get(session, issue_id)
        report = outbox.report(session, issue_id)
        reach = reports.issue_reach(session, issue)
        reads = reports.issue_reads(session, reach, min_group)
    counts = {status: report.counts.get(status, 0) for status in DeliveryStatus}
    if as_csv:
        chosen = by or "organisation"
        reports.write_csv(
            reports.table_rows(reach, reads, chosen), reports.csv_columns(chosen), sys.stdout
        )
        return
    if as_json:
        print_document(
            {
                "issue": issue_json(issue),
                "counts": counts,
                "total": report.total,
                "in_doubt": report.in_doubt,
                "started_at": report.started_at,
                "finished_at": report.finished_at,
                "duration_seconds": report.duration,
                "messages_per_second": report.rate,
                "reply_classes": report.reply_classes,
                "failures": [
                    {"email": email, "code": code, "reply": reply}
                    for email, code, reply in report.failures
                ],
                "reach": {
                    "total": reach.total.as_dict(),
                    "by_organisation": reports.table_rows(reach, reads, "organisation"),
                    "by_kind": reports.table_rows(reach, reads, "kind"),
                    "unreached_leps": reach.unreached,
                },
                "reads": {
                    "min_group": min_group,
                    "clicks": reads.clicks,
                    "unique_clicks": reads.unique,
                    "views": reads.views,
                    "unique_views": reads.unique_views,
                    "links": [
                        {
                            "position": link.position,
                            "url": link.url,
                            "label": link.label,
                            "clicks": link.clicks,
                            "unique_clicks": link.unique,
                        }
                        for link in reads.links
                    ],
                },
            },
            warnings=_unreached_warning(reach),
        )
        return
    if by is not None:
        _by_table(issue, reports.table_rows(reach, reads, by), by)
        for warning in _unreached_warning(reach):
            warn(warning)
        return
    console.print(f"[bold]{issue.publication} {issue.number}[/] (issue {issue_id}, {issue.status})")
    table(
        ("status", Column("deliveries", justify="right")),
        [
            *((status.value, f"{n:,}") for status, n in counts.items()),
            None,
            ("total", f"{report.total:,}"),
            ("in doubt", f"{report.in_doubt:,}"),
        ],
    )
    console.print(f"In doubt: {outbox.IN_DOUBT}.")
    if report.duration is not None:
        rate = f", {report.rate:,.1f} messages/s" if report.rate else ""
        console.print(f"Duration: {report.duration.total_seconds():,.1f} s{rate}")
    if report.reply_classes:
        console.print(
            "Failures and deferrals by reply (4xx by code, 5xx by enhanced status): "
            + "; ".join(f"{escape(kind)}: {n:,}" for kind, n in report.reply_classes.items())
        )
    if report.failures:
        console.print("First failures and deferrals:")
        for email, code, reply in report.failures:
            console.print(f"  {escape(email)}: {code or '-'} {escape(reply)}")
    total = reach.total
    console.print(
        f"Reach: {total.delivered:,} delivered, {total.bounced:,} bounced (later DSNs "
        f"included), {total.unsubscribed:,} unsubscribed, {total.complained:,} complained; "
        f"{reads.clicks:,} clicks ({reads.unique:,} organisation-days), {reads.views:,} "
        "view-online opens"
    )
    for warning in _unreached_warning(reach):
        warn(warning)
    console.print(f"Per LEP and organisation: mailer issue report {issue_id} --by organisation")


def _unreached_warning(reach: reports.IssueReach) -> list[str]:
    if not reach.unreached or reach.issue.status not in (IssueStatus.SENDING, IssueStatus.SENT):
        return []
    return [f"{len(reach.unreached)} LEPs were reached at nobody: " + ", ".join(reach.unreached)]


def _by_table(issue: Issue, rows: list[dict[str, object]], by: str) -> None:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "NO"
        return f"{value:,}" if isinstance(value, int) else str(value)

    names = [name for name, _ in reports.COLUMNS]
    first = ["name", "kind"] if by == "organisation" else ["name"]
    columns: list[str | Column] = [
        *first,
        *(Column(name.replace("_", " "), justify="right") for name in names),
        Column("reached", justify="right"),
        *(Column(name.replace("_", " "), justify="right") for name in reports.READ_COLUMNS),
    ]
    table(
        columns,
        [
            [cell(row.get(n)) for n in (*first, *names, "reached", *reports.READ_COLUMNS)]
            for row in rows
        ],
        title=f"{issue.publication} {issue.number}: reach and reads by {by}",
    )


# `mailer issue …` is the issue commands with `report`, which reads the sending figures.
issue_app = issues_cli.app
issue_app.command("report")(report_command)
