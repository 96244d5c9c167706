"""Shared set-up for sending tests: an approved issue and an audience in a real database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailer import calendar, editorial, issuefile, organisations, outbox, publications, settings
from mailer.contacts import email_hash
from mailer.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryStatus,
    Issue,
    LawfulBasis,
    OrganisationKind,
    Publication,
    Role,
    StaffAccount,
    StaffRole,
    Subscription,
)
from mailer.organisations import Directory
from mailer.tokens import TokenSigner
from tests.conftest import LISTS, ROOT
from tests.rendering_fixtures import DATA, ZONE, definition, renderer

SETTINGS = settings.Settings()  # the shipped defaults
EDITOR = "editor@lepnetwork.example"
APPROVER = "approver@lepnetwork.example"


def config_for(db_url: str, tmp_path: Path, **smtp: object) -> settings.Config:
    """The shipped configuration, with a database, a var/ folder and [smtp] values."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = settings.load(path, environ={"MAILER_DATABASE_URL": db_url})
    changed = config.settings.model_copy(
        update={
            "smtp": config.settings.smtp.model_copy(update=smtp),
            "paths": config.settings.paths.model_copy(
                update={"lists": str(LISTS), "templates": str(ROOT / "templates")}
            ),
        }
    )
    return settings.Config(
        path=path,
        settings=changed,
        secrets=config.secrets,
        database_url=config.database_url,
        lists_dir=LISTS,
        var_dir=tmp_path / "var",
        templates_dir=ROOT / "templates",
    )


def people(
    session: Session, count: int, *, org: str = "D2N2", domain: str | None = None
) -> list[Contact]:
    """``count`` active LEP contacts subscribed to both publications."""
    organisations.load_lists(session, LISTS)
    found = Directory.load(session).find(org)
    assert found is not None and found.id is not None
    made = []
    for number in range(count):
        email = f"reader{number}@{domain or f'lep{number % 7}.example'}"
        contact = Contact(
            email=email,
            email_hash=email_hash(email),
            name=f"Reader {number}",
            organisation_id=found.id,
            role=Role.OFFICER,
            status=ContactStatus.ACTIVE,
            lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        )
        session.add(contact)
        made.append(contact)
    session.flush()
    for contact in made:
        assert contact.id is not None
        for publication in Publication:
            session.add(Subscription(contact_id=contact.id, publication=publication))
    session.commit()
    return made


ADMIN = "admin@lepnetwork.example"


def staff_accounts(session: Session, *more: tuple[str, StaffRole]) -> None:
    """The editor, approver and admin who write and approve the test issues, and ``more``
    (no password: they never log in)."""
    accounts = (
        (EDITOR, StaffRole.EDITOR),
        (APPROVER, StaffRole.APPROVER),
        (ADMIN, StaffRole.ADMIN),
    )
    for email, role in (*accounts, *more):
        if session.exec(select(StaffAccount).where(col(StaffAccount.email) == email)).first():
            continue
        session.add(StaffAccount(email=email, role=role, password_hash="!no-login"))
    session.flush()


def drafted(session: Session, name: str = "bulletin.md", editor: str = EDITOR) -> Issue:
    """A draft from the realistic test files, bound to its slot as staff would import it
    (the newsletter's year planned first: `mailer calendar plan`)."""
    staff_accounts(session)
    document = issuefile.read(DATA / name, ZONE)
    if document.publication is Publication.NEWSLETTER and document.slot_at is not None:
        calendar.plan_newsletters(session, document.slot_at.astimezone(ZONE).year, SETTINGS)
    issue = editorial.save(session, document, editor=editor, settings=SETTINGS)
    session.commit()
    return issue


def approved(session: Session, name: str = "bulletin.md") -> Issue:
    """An approved issue from the realistic test files (scheduled for its slot)."""
    issue = drafted(session, name)
    assert issue.id is not None
    editorial.approve(
        session,
        issue.id,
        approver=APPROVER,
        renderer=renderer(),
        definition=definition(issue.publication),
        settings=SETTINGS,
    )
    session.commit()
    return issue


def start(session: Session, issue: Issue) -> int:
    """Snapshot the audience: the send has begun."""
    rule = publications.load(LISTS, issue.publication).audience
    queued = outbox.enqueue(session, issue, rule)
    session.commit()
    return queued


def external_org(session: Session) -> int:
    found = Directory.load(session).find("DBT")
    assert found is not None and found.id is not None
    assert found.kind is OrganisationKind.GOVERNMENT
    return found.id


__all__ = ["Engine", "approved", "config_for", "drafted", "external_org", "people", "start"]


# The VERP token the Yahoo complaint in tests/data/bounces carries (not signed by tests).
CORPUS_VERP = b"bounces+1f-0a1b2c3d4e5f@lepnetwork.example"


def verp_for(session: Session, contact_id: int, signer: TokenSigner) -> str:
    """The VERP sender of a copy of an issue sent to the contact (made here, as sent)."""
    issue = session.exec(select(Issue).order_by(col(Issue.id))).first() or approved(session)
    assert issue.id is not None
    sent = session.exec(
        select(Delivery).where(
            col(Delivery.issue_id) == issue.id, col(Delivery.contact_id) == contact_id
        )
    ).first()
    if sent is None:
        sent = Delivery(issue_id=issue.id, contact_id=contact_id, status=DeliveryStatus.SENT)
        session.add(sent)
        session.commit()
    return f"bounces+{signer.verp(f'{sent.id:x}')}@lepnetwork.example"


def wire(raw: bytes) -> bytes:
    """A corpus file as it travels over SMTP: CRLF line ends."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def addressed(raw: bytes, verp: str) -> bytes:
    """A corpus report as it arrives for that copy: to its VERP address (or quoting it)."""
    return raw.replace(CORPUS_VERP, verp.encode()).replace(
        b"bounces@lepnetwork.example", verp.encode()
    )
