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

from mailer import audiences, delivery, issues, messages, outbox, publications, tokens
from mailer.cli import contributions
from mailer.cli.issues import issue_json
from mailer.cli.output import AsJson, print_document, table
from mailer.cli.state import State, console, err, fail, state
from mailer.models import DeliveryStatus, IssueStatus
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
    as_json: AsJson = False,
) -> None:
    """Show a send's figures: deliveries per status, in doubt, duration, rate, failures.

    Example: mailer issue report 3
    """
    with state(ctx).session() as session:
        issue = issues.get(session, issue_id)
        report = outbox.report(session, issue_id)
    counts = {status: report.counts.get(status, 0) for status in DeliveryStatus}
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
            }
        )
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


def register(app: typer.Typer, issue_app: typer.Typer) -> None:
    """Add these commands to the root and issue apps."""
    app.command("send")(send_command)
    app.command("worker")(worker_command)
    issue_app.command("report")(report_command)
