"""Benchmark: bounce and complaint intake over SMTP, against a bare SMTP server.

A mix of the test corpus (Postfix, Exim, Exchange, Gmail permanent failures, a Postfix
delay, a Yahoo complaint, an auto-reply), each naming one of the contacts of a SQLite
database, is sent over one SMTP connection, in the same run:
  bare aiosmtpd   an endpoint that accepts and drops each message: the ceiling;
  mailer          the bounce endpoint: parse (flufl.bounce, ARF), find the contact,
                  record the event and apply the policy, one transaction per report;
and, in process, the parsing alone (bounces.read).

A large send (100,000) that bounces 2% brings 2,000 reports, mostly within an hour.

    python bench/bounces.py [--reports 2000] [--contacts 20000]
"""

from __future__ import annotations

import argparse
import resource
import smtplib
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from harness import ROOT, ZONE, free_port
from sqlmodel import Session, col, func, select

from mailer import bounces, clock, db, issuefile, issues, organisations
from mailer.contacts import email_hash
from mailer.models import BounceEvent, Contact, Organisation, OrganisationKind
from mailer.settings import BounceSettings
from mailer.tokens import TokenSigner

CORPUS = ROOT / "tests" / "data" / "bounces"
DOMAIN = "lepnetwork.example"
# Each corpus file and the address in it that is replaced by a contact's.
MIX = [
    ("postfix-permanent.eml", "ann.gone@d2n2.example"),
    ("postfix-delayed.eml", "bo.full@semlep.example"),
    ("exim-permanent.eml", "cy.moved@gbslep.example"),
    ("exchange-permanent.eml", "di.left@newanglia.example"),
    ("gmail-permanent.eml", "ed.nobody@gmail.example"),
    ("yahoo-complaint.eml", "fi.annoyed@yahoo.example"),
    ("autoreply.eml", "gus.away@solent.example"),
]


def _wire(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


CORPUS_VERP = b"bounces+1f-0a1b2c3d4e5f@lepnetwork.example"


def reports(count: int, contacts: int, signer: TokenSigner) -> list[tuple[str, bytes]]:
    """``count`` reports, each (envelope recipient, message), about distinct contacts'
    copies: to the copy's VERP address (a complaint to fbl@, quoting it)."""
    made = []
    templates = [(_wire((CORPUS / name).read_bytes()), address.encode()) for name, address in MIX]
    for n in range(count):
        raw, address = templates[n % len(templates)]
        k = (n * 7919) % contacts  # distinct contacts, spread over the table
        reader = f"reader{k}@lep{k % 38}.example"
        verp = f"bounces+{signer.verp(f'{k + 1:x}')}@{DOMAIN}"  # delivery k + 1 is theirs
        raw = (
            raw.replace(address, reader.encode())
            .replace(CORPUS_VERP, verp.encode())
            .replace(f"bounces@{DOMAIN}".encode(), verp.encode())
        )
        made.append((f"fbl@{DOMAIN}" if b"feedback-report" in raw else verp, raw))
    return made


def populate(url: str, contacts: int) -> None:
    engine = db.create_engine(url)
    db.init_schema(engine)
    with db.session_scope(engine) as session:
        organisations.load_lists(session, ROOT / "lists")
    with db.session_scope(engine) as session:
        leps = [
            o.id
            for o in session.exec(
                select(Organisation).where(col(Organisation.kind) == OrganisationKind.LEP)
            )
        ]
        now = clock.now()
        rows = []
        for n in range(contacts):
            email = f"reader{n}@lep{n % 38}.example"
            rows.append(
                dict(
                    email=email,
                    email_hash=email_hash(email),
                    name=f"Reader {n}",
                    organisation_id=leps[n % len(leps)],
                    role="officer",
                    status="active",
                    lawful_basis="legitimate_interest",
                    created_at=now,
                    updated_at=now,
                )
            )
        session.execute(sa.insert(Contact.metadata.tables["contacts"]), rows)
    with db.session_scope(engine) as session:  # one issue sent to every contact, in order
        document = issuefile.read(ROOT / "tests" / "data" / "issues" / "bulletin.md", ZONE)
        issue = issues.save_document(session, document, editor="bench")
        sent = [
            dict(
                issue_id=issue.id,
                contact_id=n + 1,
                status="sent",
                attempts=1,
                in_doubt=False,
                created_at=now,
                updated_at=now,
            )
            for n in range(contacts)
        ]
        session.execute(sa.insert(Contact.metadata.tables["deliveries"]), sent)
    engine.dispose()


class Drop:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 OK"


def send_all(port: int, messages: list[tuple[str, bytes]]) -> float:
    """Messages per second over one SMTP connection (each message acknowledged)."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for rcpt, raw in messages:
            client.sendmail("MAILER-DAEMON@mx.example", [rcpt], raw)
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()
    signer = TokenSigner(b"bench-bounce-key" * 2)
    messages = reports(args.reports, args.contacts, signer)

    started = time.perf_counter()
    kinds = [bounces.read(raw, [rcpt], signer).kind for rcpt, raw in messages]
    parse_rate = len(messages) / (time.perf_counter() - started)
    autoreplies = sum(1 for n in range(len(messages)) if MIX[n % len(MIX)][0] == "autoreply.eml")
    if kinds.count(None) != autoreplies:
        sys.exit(f"FAIL: {kinds.count(None)} reports not read, {autoreplies} auto-replies sent")

    with tempfile.TemporaryDirectory(prefix="mailer-bounce-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'mailer.db'}"
        populate(url, args.contacts)
        engine = db.create_engine(url)

        port = free_port()
        bare = Controller(Drop(), hostname="127.0.0.1", port=port)
        bare.start()
        try:
            bare_rate = send_all(port, messages)
        finally:
            bare.stop()

        intake = bounces.Intake(engine, signer, BounceSettings(), source="smtp")
        port = free_port()
        ours = bounces.endpoint("127.0.0.1", port, DOMAIN, intake)
        ours.start()
        try:
            rate = send_all(port, messages)
        finally:
            ours.stop()
        with Session(engine) as session:
            events = session.exec(select(func.count()).select_from(BounceEvent)).one()
            suppressed = session.exec(
                select(func.count()).select_from(Contact).where(col(Contact.status) != "active")
            ).one()
            verified = session.exec(
                select(func.count())
                .select_from(BounceEvent)
                .where(col(BounceEvent.delivery_id).is_not(None))
            ).one()
        engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ignored = kinds.count(None)
    print(
        f"Bounce intake benchmark: {len(messages):,} reports ({ignored} auto-replies) about "
        f"{args.contacts:,} contacts, SQLite, one SMTP connection"
    )
    print(f"parse only (bounces.read)           {parse_rate:8.0f} reports/s")
    print(f"bare aiosmtpd endpoint              {bare_rate:8.0f} msg/s  (ceiling)")
    print(f"mailer bounce endpoint              {rate:8.0f} reports/s  (parse, record, policy)")
    print(f"ratio to the bare endpoint: {rate / bare_rate:.0%}")
    print(f"recorded {events:,} events, {suppressed:,} contacts suppressed; peak RSS {peak:.0f} MB")
    minutes = 2000 / rate / 60
    print(f"2,000 reports (2% of a 100,000 send) take {minutes:.1f} min of intake")
    if events != len(messages) - ignored or verified != events:
        sys.exit(f"FAIL: {events} events ({verified} by token) for {len(messages) - ignored}")


if __name__ == "__main__":
    main()
