"""Benchmark: send one personalised issue to N recipients through Postfix's smtp-sink.

In the same run, against the same sink on 127.0.0.1:
  smtp-source   Postfix's own load generator, same message size: the ceiling;
  mailer        the real Sender (outbox claim -> personalise -> SMTP pool -> record),
                in its own process, on SQLite; also the time spent in claim/record;
  smtplib       the naive baseline: one connection, one message after another.

Targets (issue 4): at least 50% of smtp-source's rate (aim 75%), peak memory under 200 MB
at 100,000 recipients, and the database not the bottleneck.

    python bench/send.py [--recipients 20000] [--large] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import ROOT, free_port, measure, python

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
    queued = outbox.enqueue(session, issue, definition.audience)
    print(f"issue={issue.id} queued={queued}")
"""

SEND = """
import sys, time
from pathlib import Path
from mailer import db, delivery, settings
from mailer.tokens import TokenSigner
from mailer.transports import SmtpTransport
url, port, connections, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
config = settings.load(root / "config.toml", environ={"MAILER_DATABASE_URL": url})
engine = db.create_engine(url)
smtp = config.settings.smtp  # the shipped defaults, but for the relay and the pool size
transport = SmtpTransport("127.0.0.1", port, connections=connections, per_domain=smtp.per_domain,
                          messages_per_connection=smtp.messages_per_connection)
sender = delivery.Sender(engine, config, transport, signer=TokenSigner(b"bench-key-" * 4))
started = time.perf_counter()
tally = delivery.run_sender(sender, drain=True)
seconds = time.perf_counter() - started
print(f"sent={tally.sent} deferred={tally.deferred} failed={tally.failed} "
      f"seconds={seconds:.3f} db_seconds={tally.db_seconds:.3f}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--large", action="store_true", help="100,000 recipients")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    count = 100_000 if args.large else args.recipients
    if not (Path(SINK).exists() and Path(SOURCE).exists()):
        sys.exit("smtp-sink/smtp-source missing: apt-get install postfix (make test does)")
    with tempfile.TemporaryDirectory(prefix="mailer-send-bench-") as tmp:
        folder = Path(tmp)
        shutil.copy(ROOT / "config.toml", folder / "config.toml")
        config = folder / "config.toml"
        config.write_text(
            config.read_text(encoding="utf-8")
            .replace('lists = "lists"', f'lists = "{ROOT / "lists"}"')
            .replace('templates = "templates"', f'templates = "{ROOT / "templates"}"')
            .replace('var = "var"', f'var = "{folder / "var"}"'),
            encoding="utf-8",
        )
        url = f"sqlite:///{folder / 'mailer.db'}"
        setup = measure("setup", [*python(SETUP), url, str(count), str(ROOT / "bench")])
        print(f"Send benchmark: {setup.output.strip()}, {args.connections} connections")
        port = free_port()
        with sink(port):
            ours = measure(
                "mailer",
                [*python(SEND), url, str(port), str(args.connections), str(folder)],
                timeout=1800,
            )
            message = sample_message(url, config)
            size = len(message)
            source_rate = smtp_source(port, min(count, 20_000), size, args.connections)
            naive_rate = smtplib_loop(port, message, min(count // 10, 2000))
        sent = int(_figure(ours.output, "sent"))
        seconds = _figure(ours.output, "seconds")
        db_seconds = _figure(ours.output, "db_seconds")
        rate = sent / seconds
    print(f"message size: {size / 1024:.1f} KB")
    print(f"smtp-source ({args.connections} sessions)        {source_rate:8.0f} msg/s  (ceiling)")
    print(
        f"mailer Sender ({args.connections} connections)    {rate:8.0f} msg/s  "
        f"{sent:,} sent in {seconds:.1f} s, peak RSS {ours.peak_mb:.0f} MB"
    )
    print(f"smtplib, one connection             {naive_rate:8.0f} msg/s  (naive baseline)")
    ratio = rate / source_rate
    print(
        f"ratio to smtp-source: {ratio:.0%}  target >= 50% (aim 75%)  "
        f"{'PASS' if ratio >= 0.5 else 'FAIL'}"
    )
    print(
        f"database (claim + record): {db_seconds:.1f} s of {seconds:.1f} s "
        f"({db_seconds / seconds:.0%}, on its own thread alongside sending)"
    )
    if count >= 100_000:
        print(
            f"peak memory {ours.peak_mb:.0f} MB  target < 200 MB  "
            f"{'PASS' if ours.peak_mb < 200 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
