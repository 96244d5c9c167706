"""Benchmark: send one personalised issue to N recipients through Postfix's smtp-sink.

In the same run, against the same sink on 127.0.0.1:
  smtp-source   Postfix's own load generator, same message size: the ceiling;
  mailer        the real Sender (outbox claim -> personalise -> SMTP pool -> record),
                in its own process, on SQLite; also the time spent in claim/record;
  smtplib       the naive baseline: one connection, one message after another.

Rows of issue 20's table (`make bench`, through bench/table.py):
  20,000 recipients, 16 connections: mailer / smtp-source, median of 3 runs   >= 100%
  100,000 recipients, the audience snapshotted in the sending process (approve ->
  last message): mailer / smtp-source >= 95%, peak <= 150 MB, claim+record <= 60 us a
  recipient; approve -> last message < 75 s, the first message < 5 s after approval
  PostgreSQL, two `mailer worker`-like senders on one outbox: >= 90% of smtp-source

    python bench/send.py [--recipients 20000] [--runs 3] [--large] [--connections 16]
                         [--no-large] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import (
    ROOT,
    Verdict,
    create_pg_database,
    drop_pg_database,
    free_port,
    measure,
    postgres_url,
    print_table,
    python,
)

SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"

SETUP = """
import sys
sys.path.insert(0, sys.argv[3])
from pathlib import Path
import sqlalchemy as sa
from mailer import db, issues, organisations, publications, outbox, clock
from mailer.contacts import email_hash
from mailer.models import Contact, Subscription, Publication, OrganisationKind, Organisation
from mailer.db import session_scope
from mailer.rendering import Renderer
from mailer.settings import NetworkSettings, WebSettings
from sqlmodel import select
from render import realistic_issue
url, count, root = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]).parent
snapshot_later = len(sys.argv) > 4 and sys.argv[4] == "approve-only"
engine = db.create_engine(url)
db.init_schema(engine)
with session_scope(engine) as session:
    organisations.load_lists(session, root / "lists")
with session_scope(engine) as session:
    lep = Organisation.kind == OrganisationKind.LEP
    leps = [o.id for o in session.exec(select(Organisation).where(lep))]
    now = clock.now()
    rows = []
    for n in range(count):
        email = f"reader{n}@lep{n % 38}.example"
        rows.append(dict(email=email, email_hash=email_hash(email), name=f"Reader {n}",
                         organisation_id=leps[n % len(leps)], role="officer", status="active",
                         lawful_basis="legitimate_interest", created_at=now, updated_at=now))
    table = Contact.metadata.tables["contacts"]
    session.execute(table.insert(), rows)
    ids = session.execute(sa.select(table.c.id)).scalars().all()
    subs = Subscription.metadata.tables["subscriptions"]
    session.execute(subs.insert(), [dict(contact_id=i, publication="bulletin", status="active",
                                         created_at=now, updated_at=now) for i in ids])
content, renderer = realistic_issue()
from mailer.content import IssueDocument
doc = IssueDocument(Publication.BULLETIN, content.number, content.subject, content.preheader,
                    content.slot_at, content.sections)
definition = publications.load(root / "lists", Publication.BULLETIN)
with session_scope(engine) as session:
    issue = issues.save_document(session, doc)
    rendered = issues.rendering(session, issue, renderer, definition)
    issues.freeze(session, issue, rendered, approver="bench")
    queued = 0 if snapshot_later else outbox.enqueue(session, issue, definition.audience)
    print(f"issue={issue.id} queued={queued}")
"""

SEND = """
import sys, time
from pathlib import Path
from mailer import db, delivery, issues, outbox, publications, settings
from mailer.db import session_scope
from mailer.tokens import TokenSigner
from mailer.transports import SmtpTransport
url, port, connections, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
snapshot = sys.argv[5] == "snapshot"
config = settings.load(root / "config.toml", environ={"MAILER_DATABASE_URL": url})
engine = db.create_engine(url)
smtp = config.settings.smtp  # the shipped defaults, but for the relay and the pool size
transport = SmtpTransport("127.0.0.1", port, connections=connections, per_domain=smtp.per_domain,
                          messages_per_connection=smtp.messages_per_connection)
sender = delivery.Sender(engine, config, transport, signer=TokenSigner(b"bench-key-" * 4))
approved = time.perf_counter()
t0 = time.time()
if snapshot:  # what `mailer send` does once the issue is approved: the audience, then send
    with session_scope(engine) as session:
        issue = issues.get(session, 1)
        definition = publications.load(config.lists_dir, issue.publication)
        outbox.enqueue(session, issue, definition.audience)
first = []
def progress(tally):
    if tally.sent and not first:
        first.append(time.perf_counter())
started = time.perf_counter()
tally = delivery.run_sender(sender, drain=True, on_progress=progress)
done = time.perf_counter()
print(f"sent={tally.sent} deferred={tally.deferred} failed={tally.failed} "
      f"seconds={done - started:.3f} db_seconds={tally.db_seconds:.3f} "
      f"db_cpu_seconds={tally.db_cpu_seconds:.3f} "
      f"snapshot_seconds={started - approved:.3f} total_seconds={done - approved:.3f} "
      f"first_seconds={(first[0] if first else done) - approved:.3f} "
      f"t0={t0:.3f} t1={time.time():.3f}")
"""


def _figure(output: str, key: str) -> float:
    for part in output.split():
        if part.startswith(key + "="):
            return float(part.split("=", 1)[1])
    raise ValueError(f"{key} not in {output!r}")


@contextmanager
def sink(port: int) -> Iterator[None]:
    user = ["-u", "postfix"] if os.geteuid() == 0 else []
    process = subprocess.Popen([SINK, *user, f"127.0.0.1:{port}", "1000"])
    try:
        for _ in range(100):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=1) as probe:
                    probe.noop()
                break
            except OSError:
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def smtp_source(port: int, messages: int, size: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            SOURCE,
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "bench@lepnetwork.example",
            "-t",
            "reader@lep1.example",
            f"127.0.0.1:{port}",
        ],
        check=True,
        timeout=600,
    )
    return messages / (time.perf_counter() - started)


def smtplib_loop(port: int, message: bytes, messages: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for n in range(messages):
            client.sendmail("bounces@lepnetwork.example", [f"reader{n}@lep1.example"], message)
    return messages / (time.perf_counter() - started)


def sample_message(url: str, config_path: Path) -> bytes:
    """One real message of the issue: sizes smtp-source and the smtplib loop alike."""
    from mailer import db, issues, proofs, publications, settings
    from mailer.rendering import Renderer
    from mailer.tokens import TokenSigner

    config = settings.load(config_path, environ={"MAILER_DATABASE_URL": url})
    engine = db.create_engine(url)
    try:
        with db.session_scope(engine) as session:
            issue = issues.get(session, 1)
            definition = publications.load(config.lists_dir, issue.publication)
            renderer = Renderer.for_config(config)
            rendered = issues.rendering(session, issue, renderer, definition)
            template = proofs.message_template(
                issue, rendered, definition, config.settings.network, config.settings.web.base_url
            )
            personal = proofs.sample_personal(TokenSigner(b"k" * 32), issue, "lepnetwork.example")
            return template.personalise(personal)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Run:
    """One send and its ceiling, measured against the same sink."""

    sent: int
    seconds: float
    db_seconds: float
    db_cpu_seconds: float
    peak_mb: float
    source_rate: float
    size: int
    total_seconds: float
    first_seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    @property
    def ratio(self) -> float:
        return self.rate / self.source_rate


def _config(folder: Path) -> Path:
    shutil.copy(ROOT / "config.toml", folder / "config.toml")
    config = folder / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        .replace('lists = "lists"', f'lists = "{ROOT / "lists"}"')
        .replace('templates = "templates"', f'templates = "{ROOT / "templates"}"')
        .replace('var = "var"', f'var = "{folder / "var"}"'),
        encoding="utf-8",
    )
    return config


def one_run(count: int, connections: int, *, snapshot: bool = False, naive: bool = False) -> Run:
    """Set up ``count`` recipients on SQLite, send them, then run smtp-source (and, with
    ``naive``, the smtplib loop) against the same sink."""
    with tempfile.TemporaryDirectory(prefix="mailer-send-bench-") as tmp:
        folder = Path(tmp)
        config = _config(folder)
        url = f"sqlite:///{folder / 'mailer.db'}"
        mode = "approve-only" if snapshot else "enqueue"
        setup = measure("setup", [*python(SETUP), url, str(count), str(ROOT / "bench"), mode])
        print(f"Send benchmark: {setup.output.strip()}, {count:,} recipients, {connections} conn.")
        port = free_port()
        with sink(port):
            argv = [*python(SEND), url, str(port), str(connections), str(folder)]
            ours = measure("mailer", [*argv, "snapshot" if snapshot else "queued"], timeout=1800)
            message = sample_message(url, config)
            source_rate = smtp_source(port, min(count, 20_000), len(message), connections)
            if naive:
                naive_rate = smtplib_loop(port, message, min(count // 10, 2000))
                print(f"  smtplib, one connection: {naive_rate:,.0f} msg/s (naive baseline)")
    run = Run(
        sent=int(_figure(ours.output, "sent")),
        seconds=_figure(ours.output, "seconds"),
        db_seconds=_figure(ours.output, "db_seconds"),
        db_cpu_seconds=_figure(ours.output, "db_cpu_seconds"),
        peak_mb=ours.peak_mb,
        source_rate=source_rate,
        size=len(message),
        total_seconds=_figure(ours.output, "total_seconds"),
        first_seconds=_figure(ours.output, "first_seconds"),
    )
    assert run.sent == count, ours.output
    print(
        f"  mailer {run.rate:,.0f} msg/s ({run.sent:,} in {run.seconds:.1f} s, claim+record "
        f"{run.db_seconds:.1f} s wall, {run.db_cpu_seconds:.1f} s CPU "
        f"({run.db_seconds / run.sent * 1e6:.0f}/{run.db_cpu_seconds / run.sent * 1e6:.0f} us "
        f"a recipient), peak {run.peak_mb:.0f} MB); smtp-source {source_rate:,.0f} "
        f"msg/s; {run.ratio:.0%}; message {run.size / 1024:.1f} KB"
    )
    return run


def two_workers(base: str, count: int, connections: int) -> tuple[float, float]:
    """PostgreSQL: two senders, each its own process and half the connections, share one
    outbox. Their combined rate (first start to last end) and smtp-source's."""
    name = "mailer_bench_send"
    with tempfile.TemporaryDirectory(prefix="mailer-send-bench-") as tmp:
        folder = Path(tmp)
        config = _config(folder)
        try:
            url = create_pg_database(base, name)
            measure("setup", [*python(SETUP), url, str(count), str(ROOT / "bench"), "enqueue"])
            port = free_port()
            with sink(port):
                half = str(max(1, connections // 2))
                argv = [sys.executable, "-c", SEND, url, str(port), half, str(folder), "queued"]
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                workers = [
                    subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
                    for _ in range(2)
                ]
                outputs = [worker.communicate(timeout=1800)[0] for worker in workers]
                if any(worker.returncode for worker in workers):
                    raise RuntimeError(f"a worker failed: {outputs}")
                message = sample_message(url, config)
                source_rate = smtp_source(port, min(count, 20_000), len(message), connections)
        finally:
            drop_pg_database(base, name)
    sent = sum(int(_figure(out, "sent")) for out in outputs)
    assert sent == count, outputs
    wall = max(_figure(out, "t1") for out in outputs) - min(_figure(out, "t0") for out in outputs)
    rate = sent / wall
    shares = ", ".join(str(int(_figure(out, "sent"))) for out in outputs)
    print(f"  PostgreSQL, 2 senders ({shares}): {rate:,.0f} msg/s; smtp-source {source_rate:,.0f}")
    return rate, source_rate


def main(argv: list[str] | None = None) -> list[Verdict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="only the 100,000-recipient run")
    parser.add_argument("--no-large", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    if not (Path(SINK).exists() and Path(SOURCE).exists()):
        sys.exit("smtp-sink/smtp-source missing: apt-get install postfix (make test does)")
    verdicts: list[Verdict] = []
    conns = args.connections
    if not args.large:
        runs = [one_run(args.recipients, conns, naive=n == 0) for n in range(args.runs)]
        ratios = sorted(run.ratio for run in runs)
        median = statistics.median(ratios)
        verdicts.append(
            Verdict(
                f"send {args.recipients // 1000}k, {conns} conn., "
                f"{runs[0].size / 1024:.1f} KB: mailer/smtp-source",
                f"{median:.0%} (median {len(runs)})",
                ">= 100%",
                median >= 1.0,
                "runs " + ", ".join(f"{r.rate:,.0f}/{r.source_rate:,.0f} msg/s" for r in runs),
            )
        )
    if not args.no_large:
        big = one_run(100_000, conns, snapshot=True)
        per = big.db_seconds / big.sent * 1e6
        per_cpu = big.db_cpu_seconds / big.sent * 1e6
        source = f"smtp-source {big.source_rate:,.0f} msg/s"
        verdicts += [
            Verdict(
                "send --large 100k: mailer/smtp-source",
                f"{big.ratio:.0%}",
                ">= 95%",
                big.ratio >= 0.95,
                f"{big.rate:,.0f} msg/s vs {source}",
            ),
            Verdict(
                "send --large 100k: peak memory",
                f"{big.peak_mb:.0f} MB",
                "<= 150 MB",
                big.peak_mb <= 150,
                "-",
            ),
            Verdict(
                "send --large 100k: claim+record per recipient",
                f"{per:.0f} us",
                "<= 60 us",
                per <= 60,
                f"wall on the database thread; its CPU {per_cpu:.0f} us "
                f"({big.db_seconds:.1f} s wall, {big.db_cpu_seconds:.1f} s CPU "
                f"of {big.seconds:.1f} s sending)",
            ),
            Verdict(
                "approve -> last message, 100k (snapshot+send)",
                f"{big.total_seconds:.1f} s",
                "< 75 s",
                big.total_seconds < 75,
                f"smtp-source alone would take {big.sent / big.source_rate:.1f} s",
            ),
            Verdict(
                "approve -> first message, 100k",
                f"{big.first_seconds:.1f} s",
                "< 5 s",
                big.first_seconds < 5,
                "-",
            ),
        ]
    base = None if args.no_postgres or args.large else postgres_url()
    if base:
        rate, source_rate = two_workers(base, args.recipients, conns)
        verdicts.append(
            Verdict(
                "PostgreSQL, 2 senders on one outbox",
                f"{rate / source_rate:.0%}",
                ">= 90%",
                rate >= 0.9 * source_rate,
                f"{rate:,.0f} msg/s vs smtp-source {source_rate:,.0f} msg/s",
            )
        )
    elif not args.large and not args.no_postgres:
        print("PostgreSQL: not measured (none answers at 127.0.0.1:5432)")
    print_table(verdicts, "Sending")
    return verdicts


if __name__ == "__main__":
    main()
